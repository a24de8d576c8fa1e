"""Registry access exactly as containerd sees it: references, certs.d hosts, the OCI client."""

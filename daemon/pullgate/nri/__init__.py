"""containerd NRI plugin: the container-start gate without a proxy in the runtime path."""

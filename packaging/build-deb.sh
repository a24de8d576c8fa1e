#!/usr/bin/env bash
# Build dist/pullgate_<version>_<arch>.deb with plain dpkg tools (no debhelper needed).
#
# Layout of the package:
#   /opt/pullgate/                      self-contained runtime: a venv of the system python3.11
#                                       holding the pullgate wheel and its dependencies (no pip)
#   /usr/bin/pullgate                   -> /opt/pullgate/bin/pullgate
#   /usr/bin/pullgate-containerd-verifier -> /opt/pullgate/bin/... (when the shim exists)
#   /usr/libexec/pullgate/image-verifier/pullgate-containerd-verifier
#                                       the shim, alone in a directory usable as containerd 2.x's
#                                       image verifier bin_dir (not enabled on install)
#   /lib/systemd/system/pullgate.service
#   /usr/lib/sysusers.d/pullgate.conf, /usr/lib/tmpfiles.d/pullgate.conf
#   /etc/pullgate/config.toml, /etc/pullgate/trust/trustpolicy.json   (conffiles)
#   /usr/share/doc/pullgate/            README.md, README.packaging.md, copyright
#
# Environment:
#   DEB_PYTHON   the target interpreter the venv is built from (default /usr/bin/python3.11,
#                i.e. the Debian package the .deb then depends on)
#   DIST_DIR     output directory (default <repo>/dist)
#   BUILD_DIR    scratch directory (default <repo>/build/deb; wiped first)
#   DEB_COMPRESSION  dpkg-deb -Z type (default gzip: 4 s instead of xz's 35 s, +40% size)
#   Runtime dependencies are built at the versions pinned in constraints.txt.
#   Offline builds: pip honours PIP_NO_INDEX=1 and PIP_FIND_LINKS=<wheelhouse>; the wheelhouse
#   needs hatchling and every runtime dependency as wheels.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${DEB_PYTHON:-/usr/bin/python3.11}
dist=${DIST_DIR:-$repo/dist}
build=${BUILD_DIR:-$repo/build/deb}

die() { echo "build-deb: $*" >&2; exit 1; }
step() { echo "build-deb: $*" >&2; }

[[ -x $python ]] || die "no interpreter at $python (install python3.11 and python3-venv, or set DEB_PYTHON)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/daemon/pullgate/__init__.py")
[[ -n $version ]] || die "cannot read __version__ from daemon/pullgate/__init__.py"
arch=$(dpkg --print-architecture)
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
python_real=/usr/bin/python$pyver

root=$build/root
prefix=/opt/pullgate
stage=$root$prefix
wheels=$build/wheels
rm -rf "$build"
mkdir -p "$root" "$wheels" "$dist"

step "creating the runtime venv with $python ($pyver)"
"$python" -m venv "$stage"
# Pin the interpreter to its versioned name: compiled wheels are built for exactly this ABI.
ln -sfn "$python_real" "$stage/bin/python"

step "building wheels (project + dependencies)"
# The runtime dependencies at the versions the test suite ran with (constraints.txt).
"$stage/bin/python" -m pip wheel --quiet --disable-pip-version-check \
  --constraint "$repo/constraints.txt" --wheel-dir "$wheels" "$repo"
project_wheel=$(find "$wheels" -maxdepth 1 -name "pullgate-$version-*.whl" -print -quit)
[[ -n $project_wheel ]] || die "pip wheel did not produce pullgate-$version"

step "installing into the runtime"
"$stage/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
  --no-index --find-links "$wheels" "pullgate==$version"
"$stage/bin/python" -m pip uninstall --quiet --yes pip setuptools >/dev/null 2>&1 || true
rm -f "$stage"/bin/activate* "$stage"/bin/Activate.ps1 "$stage"/bin/pip*

step "relocating $stage -> $prefix"
# Console-script shebangs and pyvenv.cfg name the staging path; point them at the real prefix.
grep -rlF --null "$stage" "$stage/bin" "$stage/pyvenv.cfg" | xargs -0 -r sed -i "s#$stage#$prefix#g"
# Byte-code with the installed paths; hash-based and unchecked, so it stays valid whatever
# mtimes the archive carries and the read-only /opt is never written to at run time.
"$stage/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
  -s "$root" -p / "$stage/lib" >/dev/null
if leftovers=$(grep -rlF "$build" "$stage" --exclude='*.pyc' --exclude='direct_url.json'); then
  die "staging path left in: $leftovers"
fi

step "assembling the package tree"
install -d "$root/usr/bin"
ln -s "$prefix/bin/pullgate" "$root/usr/bin/pullgate"
if [[ -e $stage/bin/pullgate-containerd-verifier ]]; then
  install -d "$root/usr/libexec/pullgate/image-verifier"
  ln -s "$prefix/bin/pullgate-containerd-verifier" "$root/usr/bin/pullgate-containerd-verifier"
  ln -s "$prefix/bin/pullgate-containerd-verifier" \
    "$root/usr/libexec/pullgate/image-verifier/pullgate-containerd-verifier"
else
  step "note: no pullgate-containerd-verifier console script in this build; shim not shipped"
fi
install -D -m 0644 "$repo/systemd/pullgate.service" "$root/lib/systemd/system/pullgate.service"
install -D -m 0644 "$repo/packaging/sysusers.d/pullgate.conf" "$root/usr/lib/sysusers.d/pullgate.conf"
install -D -m 0644 "$repo/packaging/tmpfiles.d/pullgate.conf" "$root/usr/lib/tmpfiles.d/pullgate.conf"
install -D -m 0644 "$repo/packaging/config.toml" "$root/etc/pullgate/config.toml"
install -D -m 0644 "$repo/packaging/trust/trustpolicy.json" "$root/etc/pullgate/trust/trustpolicy.json"
doc=$root/usr/share/doc/pullgate
install -D -m 0644 "$repo/README.md" "$doc/README.md"
install -D -m 0644 "$repo/packaging/README.md" "$doc/README.packaging.md"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pullgate
Comment: /opt/pullgate bundles third-party Python distributions; their licences are in
 /opt/pullgate/lib/python$pyver/site-packages/*.dist-info/.

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

install -d "$root/DEBIAN"
install -m 0755 "$repo/packaging/debian/postinst" "$repo/packaging/debian/prerm" \
  "$repo/packaging/debian/postrm" "$root/DEBIAN/"
printf '%s\n' /etc/pullgate/config.toml /etc/pullgate/trust/trustpolicy.json >"$root/DEBIAN/conffiles"
# glibc floor of the bundled binary wheels (manylinux2014 = glibc 2.17, manylinux_2_N = 2.N).
glibc_floor=$(find "$wheels" -name '*.whl' -printf '%f\n' \
  | grep -oE 'manylinux(2014|_2_[0-9]+)' | sed -e 's/manylinux2014/17/' -e 's/manylinux_2_//' \
  | sort -n | tail -1)
depends="python$pyver"
[[ -n $glibc_floor ]] && depends+=", libc6 (>= 2.$glibc_floor)"
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: pullgate
Version: $version
Architecture: $arch
Maintainer: pullgate maintainers <pullgate@localhost>
Installed-Size: $installed_kb
Depends: $depends
Recommends: systemd
Suggests: containerd
Section: admin
Priority: optional
Description: Notary Project image signature enforcement at pull time
 pullgate verifies notation (Notary Project) signatures of container images before the
 kubelet or containerd pulls them: a daemon with a gRPC API and a CRI image service proxy,
 a command-line verifier, and a containerd 2.x image verifier shim.
EOF

out=$dist/pullgate_${version}_${arch}.deb
step "dpkg-deb --build -> $out"
dpkg-deb --build --root-owner-group -Z"${DEB_COMPRESSION:-gzip}" "$root" "$out" >/dev/null
echo "$out"

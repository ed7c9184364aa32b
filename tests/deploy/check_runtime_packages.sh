#!/usr/bin/env bash
# The runtime image installs deploy/runtime-packages.txt: check that it holds
# the Debian package of every shared library the built binaries load, and
# that every path the Dockerfile copies exists in the repository.
# Usage: check_runtime_packages.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
listed=$(grep -v '^#' "$src/deploy/runtime-packages.txt" | sort -u)
status=0
for bin in "$build/server/ctxembed-server" "$build/tools/ctxembed-cli"; do
  while read -r lib; do
    pkg=""
    # usrmerge: dpkg may know the file under /lib or /usr/lib.
    for p in "$lib" "$(readlink -f "$lib")" "${lib#/usr}" "/usr$lib"; do
      pkg=$(dpkg -S "$p" 2>/dev/null | cut -d: -f1 | head -1) && [ -n "$pkg" ] && break
    done
    if [ -z "$pkg" ]; then
      echo "FAIL: $bin needs $lib, which no Debian package provides"; status=1
    elif ! grep -qx "$pkg" <<<"$listed"; then
      echo "FAIL: $bin needs $lib from $pkg, missing from runtime-packages.txt"; status=1
    fi
  done < <(ldd "$bin" | awk '/=>/ {print $3}')
  if ldd "$bin" | grep -q "not found"; then
    echo "FAIL: $bin has unresolved libraries"; status=1
  fi
done
# Every COPY source of the Dockerfile exists.
while read -r path; do
  [ -e "$src/$path" ] || { echo "FAIL: Dockerfile copies $path, which does not exist"; status=1; }
done < <(awk '/^COPY / && !/--from=/ {for (i = 2; i < NF; i++) print $i}' "$src/deploy/Dockerfile")
[ $status -eq 0 ] && echo "runtime packages and Dockerfile paths: OK"
exit $status

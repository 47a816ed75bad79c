#!/bin/sh
# Builds native/ into one shared library at $1 (default native/build-dev/libedgeq.so), for a quick
# edit-build-verify loop: EDGEQ_NATIVE_LIB=$1 makes edgeq.verify.native load it instead of edgeq/_native.
set -e
here=$(dirname "$0")
out=${1:-$here/build-dev/libedgeq.so}
mkdir -p "$(dirname "$out")"
${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Werror -shared -fPIC -I"$here/include" -I"$here/src" \
  "$here"/src/*.c "$here"/src/kernels/*.c -lm -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"

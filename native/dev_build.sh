#!/bin/sh
# Builds native/ into one shared library at $1 (default native/build-dev/libedgeq.so), for a quick
# edit-build-verify loop: EDGEQ_NATIVE_LIB=$1 makes edgeq.verify.native load it instead of edgeq/_native.
# EXTRA_CFLAGS adds flags, e.g. "-U__SSE2__ -DEDGEQ_NO_AVX2" for the portable C kernels only.
set -e
here=$(dirname "$0")
out=${1:-$here/build-dev/libedgeq.so}
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086
${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Werror ${EXTRA_CFLAGS:-} -shared -fPIC -I"$here/include" -I"$here/src" \
  "$here"/src/*.c "$here"/src/kernels/*.c -lm -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"

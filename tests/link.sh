#!/bin/sh
# The README's ways to link a program against liblstm, tried as written:
# the plain line against lib/liblstm.a, and pkg-config after make install
# into a temporary prefix (shared library, then --static); then make
# uninstall leaves the prefix empty.
set -eu
tmp=$(mktemp -d /tmp/lstm_link_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
plain='cc -Iinclude my.c lib/liblstm.a $(pkg-config --libs openblas) -fopenmp -lz -lm'
grep -qF "    $plain" README.md || { echo "link.sh: README lacks: $plain"; exit 1; }
cp examples/lstm_example.c "$tmp/my.c"
eval "$(echo "$plain" | sed "s#my.c#$tmp/my.c#") -o $tmp/plain"
"$tmp/plain" > /dev/null
make --no-print-directory -s install PREFIX="$tmp/prefix" > /dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
grep -qF 'cc my.c $(pkg-config --cflags --libs liblstm)' README.md ||
    { echo "link.sh: README lacks the pkg-config line"; exit 1; }
cc "$tmp/my.c" $(pkg-config --cflags --libs liblstm) -o "$tmp/shared"
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/shared" > /dev/null
# SONAME: liblstm.so.MAJOR, and .MINOR on top while MAJOR is 0
ver=$(sed -n 's/^#define LSTM_VERSION_\(MAJOR\|MINOR\) //p' include/lstm.h |
      paste -sd.)
case $ver in 0.*) so=liblstm.so.$ver ;; *) so=liblstm.so.${ver%%.*} ;; esac
readelf -d "$tmp/prefix/lib/liblstm.so" | grep -qF "[$so]" ||
    { echo "link.sh: no SONAME $so"; exit 1; }
cc "$tmp/my.c" $(pkg-config --cflags liblstm) "$tmp/prefix/lib/liblstm.a" \
    $(pkg-config --static --libs-only-other --libs-only-l liblstm | sed 's/-llstm//') \
    -o "$tmp/static"
"$tmp/static" > /dev/null
make --no-print-directory -s uninstall PREFIX="$tmp/prefix"
left=$(find "$tmp/prefix" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "link.sh: make uninstall left $left files"; exit 1; }
echo "link: plain line, pkg-config shared, pkg-config static, uninstall: ok"

#!/usr/bin/env bash
# Downloads the real dataset (MarcOrfilaCarreras/spanish-news, data.csv,
# MIT license) to DEST and checks it before moving it into place: the
# header of the schema, then 10,200 rows in 12 classes as news_classifier
# reads them.
#
#   examples/get_data.sh [DEST]        (default data/data.csv)
set -euo pipefail
DEST=${1:-data/data.csv}
URL=https://huggingface.co/datasets/MarcOrfilaCarreras/spanish-news/resolve/main/data.csv
BIN=$(dirname "$0")/news_classifier
mkdir -p "$(dirname "$DEST")"
tmp="$DEST.part"
trap 'rm -f "$tmp"' EXIT
echo "downloading $URL"
if ! curl -fL --retry 2 --connect-timeout 20 -o "$tmp" "$URL"; then
  echo "get_data: could not download $URL (offline?). Train on another file" \
       "instead, e.g.: make run DATA=../shared/data/spanish-news-dev.csv.gz" >&2
  exit 1
fi
head=$(head -c 64 "$tmp" | head -n 1 | tr -d '\r' | sed 's/^\xef\xbb\xbf//')
if [ "$head" != "language,category,newspaper,hash,text" ]; then
  echo "get_data: $URL: unexpected header '$head'" >&2
  exit 1
fi
stats=$("$BIN" stats --data "$tmp")
rows=$(echo "$stats" | sed -n 's/.*: \([0-9]*\) rows$/\1/p' | head -n 1)
classes=$(echo "$stats" | sed -n 's/^\([0-9]*\) classes:$/\1/p')
if [ "$rows" != 10200 ] || [ "$classes" != 12 ]; then
  echo "get_data: $URL: $rows rows in $classes classes, expected 10200 in 12" >&2
  exit 1
fi
mv "$tmp" "$DEST"
trap - EXIT
echo "get_data: $DEST: $rows rows, $classes classes"

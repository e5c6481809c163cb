#!/usr/bin/env bash
# fetch.sh downloads a file and checks it against a published SHA-256,
# failing loudly, and leaving nothing, when it differs:
#
#   scripts/fetch.sh URL FILE SHA256
#
# SHA256 is the whole digest (64 hex digits), or a prefix of at least 8
# where the publisher gives only that: torchvision's weight files carry
# the first 8 digits of their SHA-256 in their names, which torch hub
# checks the same way. An empty SHA256 is an error: every download of
# the image is checked.
set -euo pipefail
url="${1:?usage: fetch.sh URL FILE SHA256}" file="${2:?usage: fetch.sh URL FILE SHA256}" want="${3:-}"
want="$(printf '%s' "$want" | tr 'A-F' 'a-f')"
if ! [[ "$want" =~ ^[0-9a-f]{8,64}$ ]]; then
  echo "fetch: no SHA-256 to check $url against (got \"$want\"): pin one" >&2
  exit 1
fi
curl -fL --retry 3 -o "$file.part" "$url"
have="$(sha256sum "$file.part" | cut -d' ' -f1)"
if [ "${have:0:${#want}}" != "$want" ]; then
  rm -f "$file.part"
  echo "fetch: $url: SHA-256 mismatch: got $have, want $want" >&2
  exit 1
fi
mv "$file.part" "$file"
echo "fetch: $file: SHA-256 $have checked"

#!/usr/bin/env bash
# Run a command as on a machine without Graphviz and Chromium: in a private mount namespace, an
# overlay on the folders that hold `dot` and `chromium` whites them out (nothing else changes;
# the namespace ends with the command). Needs root or `unshare -rm` user namespaces.
#   tests/without_programs.sh make test
set -euo pipefail
hide=(dot chromium chromium-browser google-chrome google-chrome-stable)
folders=()
for name in "${hide[@]}"; do
  path=$(command -v "$name" 2>/dev/null) || continue
  folders+=("$(dirname "$path")")
done
if [ "${#folders[@]}" -eq 0 ]; then exec "$@"; fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
flags=-m
[ "$(id -u)" -eq 0 ] || flags=-rm
unshare $flags bash -s "$scratch" "${hide[*]}" "$(printf '%s\n' "${folders[@]}" | sort -u)" "$@" <<'INNER'
set -euo pipefail
scratch=$1 hide=$2 folders=$3
shift 3
mount --make-rprivate /
i=0
for folder in $folders; do
  upper=$scratch/$i/upper work=$scratch/$i/work
  mkdir -p "$upper" "$work"
  for name in $hide; do [ -e "$folder/$name" ] && mknod "$upper/$name" c 0 0; done
  mount -t overlay overlay -o "lowerdir=$folder,upperdir=$upper,workdir=$work" "$folder"
  i=$((i + 1))
done
exec "$@"
INNER

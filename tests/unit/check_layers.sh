#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The code matches docs/architecture.md's map of who may use whom: every
# #include "..." in a production file must name a header its folder may use.
# The rules below are that map; change both together. Usage:
# check_layers.sh SOURCE_ROOT
set -u
root=${1:?usage: $0 SOURCE_ROOT}
cd "$root" || exit 2

# FROM: what its files may include (a folder: any header in it; a path or
# glob: those headers). A file's rules are its folder's plus its own line.
rules='
include/smolvm    include/smolvm
common            common
host/lib          host/lib common include/smolvm
host/cli          host/cli common include/smolvm image-builder/image.h
host/cli/cmd_mcp.c host/mcp
host/mcp          host/mcp common include/smolvm host/cli/cli_*.h
host/supervisor   host/supervisor common
fs                fs common
fs/smolvm-fs.c    include/smolvm host/cli/cli_*.h
guest-init        guest-init common fs/fs_server.h fs/fuse_stream.h
image-builder     image-builder common
python/src        python/src include/smolvm
'
declare -A allow
while read -r from targets; do
        [ -n "$from" ] && allow[$from]=$targets
done <<<"$rules"
folders=$(printf '%s\n' "${!allow[@]}" | grep -v '\.c$' | sort)

# Every header of the tree by its base name (base names are unique: the
# include path is flat).
declare -A header
while read -r h; do
        b=${h##*/}
        if [ -n "${header[$b]:-}" ]; then
                echo "two headers named $b: ${header[$b]} and $h (the include path is flat)"
                exit 1
        fi
        header[$b]=$h
done < <(find . -name '*.h' ! -path './.git/*' ! -path './build*' ! -path './tests/*' ! -path './bench/*' \
                 -printf '%P\n' | sort)

folder_of() {
        local f=$1 d best=
        for d in $folders; do
                [[ $f == "$d"/* ]] && [ ${#d} -gt ${#best} ] && best=$d
        done
        echo "$best"
}

bad=0 checked=0
while read -r file; do
        from=$(folder_of "$file")
        if [ -z "$from" ]; then
                echo "$file: its folder is not on the map (docs/architecture.md, tests/unit/check_layers.sh)"
                bad=$((bad + 1))
                continue
        fi
        targets="${allow[$from]} ${allow[$file]:-}"
        while IFS=: read -r line inc; do
                inc=${inc#*\"}
                inc=${inc%%\"*}
                if [[ $inc == */* && -f include/$inc ]]; then
                        to=include/$inc
                else
                        to=${header[${inc##*/}]:-}
                fi
                checked=$((checked + 1))
                if [ -z "$to" ]; then
                        echo "$file:$line: #include \"$inc\": no such header in the tree"
                        bad=$((bad + 1))
                        continue
                fi
                ok=
                for t in $targets; do
                        # shellcheck disable=SC2053 # t may be a glob
                        if [[ $to == "$t"/* || $to == $t ]]; then
                                ok=1
                                break
                        fi
                done
                if [ -z "$ok" ]; then
                        echo "$file:$line: #include \"$inc\" ($to): $from may not use $(folder_of "$to")"
                        bad=$((bad + 1))
                fi
        done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file")
done < <(find $folders -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \) | sort)
# Folders nested in a mapped one (host/lib under host/) are walked on their own.
while read -r file; do
        [ -n "$(folder_of "$file")" ] || { echo "$file: its folder is not on the map"; bad=$((bad + 1)); }
done < <(find . -name '*.c' ! -path './.git/*' ! -path './build*' ! -path './tests/*' ! -path './bench/*' -printf '%P\n')

if [ "$checked" -eq 0 ]; then
        echo "no #include found: is $root the source root?"
        exit 1
fi
echo "$checked includes checked, $bad crossing the map"
[ "$bad" -eq 0 ]

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Docs name only files that exist: every backticked repository path in
# README.md and docs/*.md (`host/lib/paths.c`, `tests/unit/`, `bench/boot.sh 5`)
# must match something in the tree. A placeholder (<target>) or a glob (*)
# must match at least one entry. Usage: check_doc_paths.sh SOURCE_ROOT
set -u
root=${1:?usage: $0 SOURCE_ROOT}
cd "$root" || exit 2
# The tree's top-level directories: a backticked word starting with one of them is a path.
tops=$(find . -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name 'build*' -printf '%f\n' | paste -sd'|')
bad=0 checked=0
for md in README.md docs/*.md; do
        [ -f "$md" ] || continue
        while IFS=: read -r line span; do
                word=${span#\`}
                word=${word%\`}
                word=${word%% *}          # `bench/boot.sh 5`: the program
                word=${word%%:[0-9]*}     # file:line
                word=${word%%[(),;]*}     # fn(), trailing punctuation
                [[ $word =~ ^($tops)/ ]] || continue
                pattern=$(sed -E 's/<[^>]*>/*/g' <<<"$word")
                checked=$((checked + 1))
                if ! compgen -G "$pattern" >/dev/null; then
                        echo "$md:$line: \`$word\` does not exist"
                        bad=$((bad + 1))
                fi
        done < <(grep -noE '`[^`]+`' "$md")
done
if [ "$checked" -eq 0 ]; then
        echo "no repository paths found in the docs: is $root the source root?"
        exit 1
fi
echo "$checked paths checked, $bad missing"
[ "$bad" -eq 0 ]

#!/usr/bin/env bash
# Fails when a tracked file cites documents that are not in the repository ("spec 5.3",
# "decision 26", "per the spec", their file names): a reader of the code cannot follow them.
# State the fact where it is used, or point to a section of docs/kazoo.md.
# Usage: check-references.sh (from anywhere in the repository)
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

patterns=(
  # "spec 5.3", "decision 26", "decisions #4", and test names such as spec_9_1 or decision_26
  '(^|[^[:alpha:]])(spec|decisions?)[ _]+#?[0-9]'
  # "spec section ...", "spec table ..."
  '(^|[^[:alpha:]])spec (section|table)'
  # "the spec", "per the spec's", the_spec_example
  '(^|[^[:alpha:]])the[ _]spec([^[:alpha:]]|$)'
  # a citation broken over two lines: "(spec" or "(decision" ending a line
  '\((spec|decisions?)[[:space:]]*$'
  # the documents themselves
  'decisions\.md|kazoo-webhooks\.md'
)
arguments=()
for pattern in "${patterns[@]}"; do
  arguments+=(-e "$pattern")
done

# This file spells the patterns out, so it is left out of the search.
status=0
matches=$(git grep -nIiE "${arguments[@]}" -- . ':!tests/support/check-references.sh') || status=$?
case $status in
  0)
    echo "check-references: state the fact, or point to docs/kazoo.md#SECTION, instead of:" >&2
    echo "$matches" >&2
    exit 1
    ;;
  1) ;; # nothing found
  *)
    echo "check-references: git grep failed ($status)" >&2
    exit "$status"
    ;;
esac

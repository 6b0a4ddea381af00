#!/usr/bin/env bash
# Regenerates the jextract bindings committed under
#   java/src/main/java/dev/attn4j/internal/ffm/generated/
# from the argument files next to this script. The generated sources are never
# edited by hand: change an .args file (or attn4j.h) and run this script again.
#
# Needs: jextract on PATH (https://github.com/openjdk/jextract, any build for
# JDK >= 22), Maven (to fetch the OpenBLAS platform jar whose cblas.h is used).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/../.." && pwd)
out="$root/java/src/main/java"
gen="$out/dev/attn4j/internal/ffm/generated"

if ! command -v jextract >/dev/null 2>&1; then
  cat >&2 <<'MSG'
regenerate.sh: jextract is not on PATH.
  jextract is not published to Maven Central or Debian. Build it from its public
  source (github.com/openjdk/jextract) outside this project, or download a build,
  then put its bin/ directory on PATH and run this script again:
      PATH=/path/to/jextract/bin:$PATH native/jextract/regenerate.sh
MSG
  exit 1
fi

openblas_version=$(sed -n 's:.*<openblas.version>\(.*\)</openblas.version>.*:\1:p' "$root/pom.xml")
platform=$(sed -n 's:.*<attn4j.platform>\(.*\)</attn4j.platform>.*:\1:p' "$root/pom.xml")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "Fetching org.bytedeco:openblas:$openblas_version:$platform for its cblas.h"
# Run outside the project so the copy needs no project model.
(cd "$work" && mvn -q -B dependency:copy \
  "-Dartifact=org.bytedeco:openblas:$openblas_version:jar:$platform" \
  "-DoutputDirectory=$work")
(cd "$work" && unzip -q -o ./*.jar "org/bytedeco/openblas/$platform/include/*")
include="$work/org/bytedeco/openblas/$platform/include"

rm -rf "$gen/openblas" "$gen/kernels"
(cd "$here" && jextract --output "$out" -I "$include" @openblas.args "$include/cblas.h")
(cd "$here" && jextract --output "$out" -I "$root/native/include" @attn4j.args "$root/native/include/attn4j.h")
echo "Generated:"
find "$gen" -name '*.java' | sed "s:^$root/::" | sort

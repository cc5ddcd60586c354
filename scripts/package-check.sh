#!/usr/bin/env bash
# Packs the library and the tool, then uses them as someone outside this repository would. Three checks:
#   contents   the packages in the feed: SparseAttention (Core and Kernels, XML docs, README, MIT, the pinned
#              dependencies only), its symbols (both pdbs, sources embedded) and the DotnetTool SparseAttention.Cli
#   consumer   a fresh console project in a temporary folder restores SparseAttention from that feed alone (its own
#              package folder, so no stale copy of the same version is used) and runs block-sparse attention forward
#              and backward on the CPU accelerator, checked against float64 computed in that project
#   tool       dotnet tool install from the feed, then sparse-attention layout
# Exit status: the number of failed checks (0 when all passed). Usage: scripts/package-check.sh [Configuration]
# Set PACKAGE_CHECK_SEED to rerun the consumer with the seed a failure printed.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
configuration=${1:-Release}
checks=3

work=$(mktemp -d "${TMPDIR:-/tmp}/sparse-attention-package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
feed=$work/feed
case "$work/" in "$repo"/*) echo "package check: the temporary folder $work is inside the repository"; exit "$checks";; esac

start=$SECONDS
if ! dotnet pack SparseAttention.sln -c "$configuration" -o "$feed" -warnaserror; then
  echo "package check FAILED: dotnet pack (all $checks checks count as failed)"
  echo "package check: 0 of $checks checks passed"
  exit "$checks"
fi
version=$(ls "$feed" | sed -nE 's/^SparseAttention\.([0-9][^/]*)\.nupkg$/\1/p' | head -1)
echo "package check: packed SparseAttention $version in $((SECONDS - start)) s"

# The consumer's folder: nothing of this repository's build applies there (the empty Directory.* files stop MSBuild
# looking further up), its own nuget.config and package folder. SparseAttention comes from the feed and nowhere else.
consumer=$work/consumer
mkdir -p "$consumer"
cp scripts/package-check/PackageCheck.csproj scripts/package-check/Program.cs "$consumer/"
for file in Directory.Build.props Directory.Build.targets Directory.Packages.props; do echo '<Project />' >"$work/$file"; done
cat >"$work/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$work/packages" />
  </config>
  <packageSources>
    <clear />
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="local"><package pattern="SparseAttention" /><package pattern="SparseAttention.*" /></packageSource>
    <packageSource key="nuget.org"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
EOF
export NUGET_PACKAGES=$work/packages

failures=0
step() { # name, command...
  local name=$1; shift
  local begin=$SECONDS
  if "$@"; then
    echo "package check passed: $name ($((SECONDS - begin)) s)"
  else
    echo "package check FAILED: $name"
    failures=$((failures + 1))
  fi
}

build_consumer() {
  dotnet build "$consumer/PackageCheck.csproj" -c Release -p:SparseAttentionVersion="$version" --configfile "$work/nuget.config" -nologo -v:q &&
    grep -q "\"SparseAttention/$version\"" "$consumer/obj/project.assets.json" &&
    [ -f "$work/packages/sparseattention/$version/sparseattention.$version.nupkg" ] &&
    ! grep -q '"type": "project"' "$consumer/obj/project.assets.json"
}
run_consumer() { dotnet "$consumer/bin/Release/net10.0/PackageCheck.dll" "$@"; }

if build_consumer; then
  step contents run_consumer contents "$feed" "$repo/Directory.Packages.props"
  step consumer run_consumer attention ${PACKAGE_CHECK_SEED:-}
else
  echo "package check FAILED: the consumer project did not restore SparseAttention $version from the feed or did not build"
  failures=$((failures + 2))
fi

tool() {
  dotnet tool install SparseAttention.Cli --version "$version" --tool-path "$work/tools" --configfile "$work/nuget.config" &&
    "$work/tools/sparse-attention" layout --mode fixed --ctx 512 --block 32 --heads 4 --length 128 --verts 4
}
step tool tool

echo "package check: $((checks - failures)) of $checks checks passed in $((SECONDS - start)) s"
exit "$failures"

#!/usr/bin/env bash
# Builds a self-contained bundle of the tests and the CLI for a GPU machine with no .NET SDK:
# bundle/sparse-attention.tar.gz, which unpacks to app/ (run app/SparseAttention.Tests and app/SparseAttention.Cli).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf bundle/app && mkdir -p bundle/app
for project in SparseAttention.Tests SparseAttention.Cli; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -o bundle/app -p:GenerateDocumentationFile=false >/dev/null
done
tar -C bundle -czf bundle/sparse-attention.tar.gz app
ls -la bundle/sparse-attention.tar.gz

#!/usr/bin/env bash
# Nextflow launcher for jars resolved from Maven Central (see tools/nextflow/install.sh).
# JVM flags as in the official launcher; plugins are never downloaded (NXF_OFFLINE).
set -euo pipefail
version=${NXF_VER:-24.10.0}
lib="@LIB@/$version"
[ -d "$lib" ] || { echo "nextflow: $lib missing; run tools/nextflow/install.sh" >&2; exit 1; }
export NXF_OFFLINE=${NXF_OFFLINE:-true}
export NXF_HOME=${NXF_HOME:-$HOME/.nextflow}
opens=""
for p in java.lang java.io java.nio java.net java.util java.util.concurrent \
         java.util.concurrent.locks java.util.regex sun.nio.ch sun.nio.fs \
         sun.net.www.protocol.http sun.net.www.protocol.https sun.net.www.protocol.ftp \
         sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm; do
    opens="$opens --add-opens=java.base/$p=ALL-UNNAMED"
done
# shellcheck disable=SC2086
exec java ${NXF_JVM_ARGS:-} $opens -cp "$lib/*" nextflow.cli.Launcher "$@"

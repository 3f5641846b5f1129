#!/usr/bin/env bash
# Install a pinned Nextflow from Maven Central into nextflow-lib/<version>/ and a launcher at
# ./nextflow. With internet access the usual way is: curl -s https://get.nextflow.io | bash
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=${NXF_VER:-24.10.0}
lib="$root/nextflow-lib/$version"
if [ ! -f "$lib/nextflow-$version.jar" ]; then
    command -v mvn >/dev/null || { echo "install.sh: Maven (mvn) is needed" >&2; exit 1; }
    mkdir -p "$lib"
    mvn -q -B -f "$here/pom.xml" -Dnextflow.version="$version" \
        dependency:copy-dependencies -DoutputDirectory="$lib"
fi
sed "s|@LIB@|$root/nextflow-lib|" "$here/launcher.sh" > "$root/nextflow"
chmod +x "$root/nextflow"
echo "Nextflow $version installed: $root/nextflow (jars in $lib)"

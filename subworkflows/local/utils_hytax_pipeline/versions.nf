/*
========================================================================================
    hytax: software versions
========================================================================================
    Every process's versions.yml, once, plus the workflow's own, as the YAML MultiQC shows
    in its software versions table.
----------------------------------------------------------------------------------------
*/

def processVersionsFromYAML(yaml_file) {
    def yaml = new org.yaml.snakeyaml.Yaml()
    def versions = yaml.load(yaml_file.text).collectEntries { process, tools -> [process.tokenize(':')[-1], tools] }
    return yaml.dumpAsMap(versions).trim()
}

def workflowVersionToYAML() {
    return """\
        Workflow:
            ${workflow.manifest.name}: ${workflow.manifest.version}
            Nextflow: ${workflow.nextflow.version}
        """.stripIndent().trim()
}

// channel of YAML texts, one per process (identical ones once), plus the workflow's own
def softwareVersionsToYAML(ch_versions) {
    return ch_versions
        .unique()
        .map { version -> processVersionsFromYAML(version) }
        .unique()
        .mix(channel.of(workflowVersionToYAML()))
}

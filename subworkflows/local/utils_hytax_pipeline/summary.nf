/*
========================================================================================
    hytax: --help and the parameter summary
========================================================================================
    Both read the groups and descriptions of nextflow_schema.json.
----------------------------------------------------------------------------------------
*/

include { loadJson         } from './parameters'
include { schemaProperties } from './parameters'
include { schemaGroups     } from './parameters'

def helpMessage(String schema_path) {
    def schema = loadJson(schema_path)
    def properties = schemaProperties(schema)
    def text = [
        "hytax ${workflow.manifest.version}: ${workflow.manifest.description}",
        '',
        'Usage:',
        '  nextflow run hytax --input samplesheet.csv --mmseqs_db db/ref --outdir results -profile docker',
        '  nextflow run hytax --reads \'data/*_R{1,2}.fastq.gz\' --reference_fasta ref.fa.gz --taxdump taxdump/ --tax_mapping seq2taxid.tsv',
        '  nextflow run hytax -profile test',
    ]
    schemaGroups(schema).each { title, names ->
        text << '' << "${title}:"
        names.findAll { !properties[it].hidden }.each { name ->
            def spec = properties[name]
            def default_value = spec.default != null && spec.default != '' ? " [default: ${spec.default}]" : ''
            text << "  --${name.padRight(22)} ${spec.description ?: ''}${default_value}"
        }
    }
    text << '' << 'Profiles: test, docker, singularity, apptainer, gpu, awsbatch (see docs/usage.md)'
    return text.join('\n')
}

// group title -> [name: value] of every parameter that is set
def paramsSummaryMap(Map parameters, Map schema) {
    def properties = schemaProperties(schema)
    def summary = [:]
    schemaGroups(schema).each { title, names ->
        def group = [:]
        names.each { name ->
            def value = parameters[name]
            if (value != null && value != '' && !properties[name].hidden) {
                group[name] = value
            }
        }
        if (group) summary[title] = group
    }
    // nothing that changes from run to run (runName, times): MULTIQC stays cached on -resume
    summary['Core Nextflow options'] = [
        profile    : workflow.profile,
        launchDir  : workflow.launchDir,
        workDir    : workflow.workDir,
        projectDir : workflow.projectDir,
        userName   : workflow.userName,
    ].findAll { it.value != null }
    return summary
}

// MultiQC custom content: the parameters of this run
def paramsSummaryMultiqc(Map summary) {
    def html = summary.collect { title, group ->
        def rows = group.collect { name, value ->
            "        <dt>${name}</dt><dd><samp>${escapeHtml(value.toString())}</samp></dd>"
        }.join('\n')
        "    <p style=\"font-size:110%\"><b>${title}</b></p>\n    <dl class=\"dl-horizontal\">\n${rows}\n    </dl>"
    }.join('\n')
    return """\
        id: '${workflow.manifest.name.replace('/', '-')}-summary'
        description: ' - the parameters of this run.'
        section_name: 'hytax workflow summary'
        section_href: 'https://github.com/hytax/hytax'
        plot_type: 'html'
        data: |
        """.stripIndent() + html.readLines().collect { "    ${it}" }.join('\n') + '\n'
}

def escapeHtml(String text) {
    return text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')
}

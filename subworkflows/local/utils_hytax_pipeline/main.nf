/*
========================================================================================
    hytax: pipeline start and end
========================================================================================
    PIPELINE_INITIALISATION  checks every parameter against nextflow_schema.json (type,
                             enum, pattern, range, paths that must exist) plus the few rules
                             a schema cannot say (which inputs go together), then reads the
                             samples from --input (checked against assets/schema_input.json)
                             or --reads. All problems are reported at once.
    PIPELINE_COMPLETION      a short summary when the run ends.
    Plus the MultiQC helpers the workflow uses: software versions, parameter summary,
    methods text. Plain Groovy: no plugin (nf-schema) is needed or downloaded.
----------------------------------------------------------------------------------------
*/

workflow PIPELINE_INITIALISATION {

    take:
    parameters      // map: params
    schema_path     // string: nextflow_schema.json
    sheet_schema    // string: assets/schema_input.json

    main:
    schema = loadJson(schema_path)
    checkParameters(parameters, schema)

    // [meta, [reads]]: meta.id, meta.single_end; reads: [R1] or [R1, R2]
    ch_samples = parameters.input
        ? channel.fromList(readSamplesheet(parameters.input, loadJson(sheet_schema)))
        : readsGlobChannel(parameters.reads)

    emit:
    samples        = ch_samples
    summary_params = paramsSummaryMap(parameters, schema)
}

workflow PIPELINE_COMPLETION {

    take:
    outdir          // string: --outdir

    main:
    // the handler's delegate is the workflow metadata: read it in a function
    workflow.onComplete {
        completionSummary(outdir)
    }
}

def completionSummary(outdir) {
    if (workflow.success) {
        def cached = workflow.stats.cachedCount
        def note = workflow.stats.succeedCount == 0 && cached > 0 ? ' (all tasks cached)' : ''
        log.info "hytax ${workflow.manifest.version}: done in ${workflow.duration}; results in ${outdir}${note}"
    }
}

/*
----------------------------------------------------------------------------------------
    Parameters
----------------------------------------------------------------------------------------
*/

// Every problem at once, then stop
def checkParameters(Map parameters, Map schema) {
    def errors = []
    if (parameters.validate_params) {
        errors += validateParameters(parameters, schema)
    }
    errors += checkParameterCombinations(parameters)
    if (errors) {
        error("Invalid parameters:\n  - " + errors.join('\n  - ') + "\nSee --help or docs/usage.md.")
    }
}

def loadJson(String path) {
    return new groovy.json.JsonSlurper().parseText(file(path, checkIfExists: true).text)
}

// name -> property of every parameter in the schema (groups under $defs, or top level)
def schemaProperties(Map schema) {
    def properties = [:]
    def groups = (schema['$defs'] ?: schema.definitions ?: [:]).values()
    groups.each { group -> properties.putAll(group.properties ?: [:]) }
    properties.putAll(schema.properties ?: [:])
    return properties
}

// group title -> [names] in schema order, for --help and the summary
def schemaGroups(Map schema) {
    def groups = [:]
    (schema['$defs'] ?: schema.definitions ?: [:]).each { key, group ->
        groups[group.title ?: key] = (group.properties ?: [:]).keySet() as List
    }
    if (schema.properties) {
        groups['Other parameters'] = schema.properties.keySet() as List
    }
    return groups
}

def snakeCase(String name) {
    return name.replaceAll(/([a-z0-9])([A-Z])/, '$1_$2').replace('-', '_').toLowerCase()
}

// One message per problem: type, enum, pattern, range, existence of paths
def validateParameters(Map parameters, Map schema) {
    def properties = schemaProperties(schema)
    def errors = []
    parameters.each { name, value ->
        if (!properties.containsKey(name) && !properties.containsKey(snakeCase(name))) {
            log.warn "Unknown parameter --${name} (not in nextflow_schema.json): ignored"
        }
    }
    properties.each { name, spec ->
        def value = parameters[name]
        if (value == null || (value instanceof CharSequence && value.toString().isEmpty())) {
            return
        }
        def problem = checkValue(value, spec)
        if (problem) {
            errors << "--${name} '${value}': ${spec.errorMessage ?: problem}"
        }
    }
    return errors
}

def checkValue(value, Map spec) {
    def type = spec.type instanceof List ? spec.type.find { it != 'null' } : spec.type
    def text = value.toString()
    if (type == 'boolean' && !(value instanceof Boolean)) {
        return 'expected true or false'
    }
    if (type == 'integer' && !(value instanceof Integer || value instanceof Long || text ==~ /-?\d+/)) {
        return 'expected an integer'
    }
    if (type == 'number' && !(value instanceof Number || text.isNumber())) {
        return 'expected a number'
    }
    if (type == 'string' && value instanceof Boolean) {
        return 'expected a value, got a bare flag'
    }
    if (spec.enum && !(text in spec.enum*.toString())) {
        return "expected one of ${spec.enum.join(', ')}"
    }
    if (spec.pattern && !java.util.regex.Pattern.compile(spec.pattern.toString()).matcher(text).find()) {
        return "does not match ${spec.pattern}"
    }
    if (spec.minimum != null && text.isNumber() && text.toBigDecimal() < (spec.minimum as BigDecimal)) {
        return "must be at least ${spec.minimum}"
    }
    if (spec.maximum != null && text.isNumber() && text.toBigDecimal() > (spec.maximum as BigDecimal)) {
        return "must be at most ${spec.maximum}"
    }
    if (spec.exists && spec.format in ['file-path', 'directory-path', 'path'] && !text.contains('://')) {
        def path = file(text)
        if (!path.exists()) return "no such ${spec.format == 'directory-path' ? 'folder' : 'file'} (${path})"
        if (spec.format == 'directory-path' && !path.isDirectory()) return "not a folder (${path})"
        if (spec.format == 'file-path' && path.isDirectory()) return "a folder, expected a file (${path})"
    }
    return null
}

// What the schema cannot say: which inputs go together, and what a database prefix holds
def checkParameterCombinations(Map p) {
    def errors = []
    if (p.input && p.reads) {
        errors << 'give either --input (samplesheet) or --reads (glob), not both'
    }
    if (!p.input && !p.reads) {
        errors << 'no reads: give --input samplesheet.csv or --reads \'path/*_R{1,2}.fastq.gz\''
    }
    def build = [p.reference_fasta, p.tax_mapping].any()
    if (p.mmseqs_db && build) {
        errors << 'give either --mmseqs_db (a prebuilt seqTaxDB) or --reference_fasta/--tax_mapping/--taxdump to build one, not both'
    } else if (p.mmseqs_db) {
        errors += checkMmseqsDb(p.mmseqs_db.toString(), p.taxdump)
    } else if (build || p.taxdump) {
        ['reference_fasta', 'taxdump', 'tax_mapping'].findAll { !p[it] }.each {
            errors << "--${it} is needed to build the MMseqs2 database (with --reference_fasta, --taxdump and --tax_mapping)"
        }
    } else {
        errors << 'no reference: give --mmseqs_db path/to/db/prefix, or --reference_fasta, --taxdump and --tax_mapping'
    }
    if (p.taxdump && !p.mmseqs_db) {
        def dir = file(p.taxdump.toString())
        ['nodes.dmp', 'names.dmp'].findAll { dir.isDirectory() && !dir.resolve(it).exists() }.each {
            def hint = dir.resolve("${it}.gz").exists() ? ' (found a .gz: MMseqs2 needs it uncompressed)' : ''
            errors << "--taxdump ${dir}: no ${it}${hint}"
        }
    }
    return errors
}

def checkMmseqsDb(String prefix, taxdump) {
    def errors = []
    def db = file(prefix)
    if (!file("${prefix}.dbtype").exists()) {
        def hint = db.isDirectory() ? ' (that is a folder: pass the database prefix inside it, e.g. path/to/db/ref)' : ''
        return ["--mmseqs_db ${prefix}: no ${db.name}.dbtype, not an MMseqs2 database prefix${hint}"]
    }
    if (!file("${prefix}_taxonomy").exists() && !file("${prefix}_mapping").exists()) {
        errors << "--mmseqs_db ${prefix}: no ${db.name}_taxonomy or ${db.name}_mapping: not a seqTaxDB (run mmseqs createtaxdb)"
    }
    if (!taxdump && !(file("${prefix}_nodes.dmp").exists() && file("${prefix}_names.dmp").exists())) {
        errors << "--mmseqs_db ${prefix}: no ${db.name}_nodes.dmp/_names.dmp next to it; pass the taxdump it was built from with --taxdump"
    }
    return errors
}

/*
----------------------------------------------------------------------------------------
    Samples
----------------------------------------------------------------------------------------
*/

// [[meta, [reads]], ...] from a CSV checked against assets/schema_input.json. Relative paths
// are read from the samplesheet's folder.
def readSamplesheet(sheet_path, Map sheet_schema) {
    def sheet = file(sheet_path.toString())
    def where = { n -> "Samplesheet ${sheet}, line ${n}" }
    def items = sheet_schema.items
    def columns = items.properties.keySet() as List
    def required = items.required ?: []
    def lines = sheet.readLines()
    def header = lines ? lines[0].split(',', -1)*.trim() : []
    if (!header || header == ['']) {
        error("Samplesheet ${sheet} is empty: expected a header line '${columns.join(',')}'")
    }
    def unknown = header.findAll { !(it in columns) }
    def missing = required.findAll { !(it in header) }
    if (unknown || missing || header.size() != header.unique(false).size()) {
        error("${where(1)}: header '${lines[0]}' is not valid: expected '${columns.join(',')}'" +
            (unknown ? "; unknown column(s) ${unknown.join(', ')}" : '') +
            (missing ? "; missing column(s) ${missing.join(', ')}" : ''))
    }
    def errors = []
    def samples = []
    def seen = [:]
    lines.eachWithIndex { line, index ->
        def n = index + 1
        if (n == 1 || !line.trim()) return
        def fields = line.split(',', -1)*.trim()
        if (fields.size() != header.size()) {
            errors << "${where(n)}: ${fields.size()} column(s), the header has ${header.size()}"
            return
        }
        def row = [header, fields].transpose().collectEntries()
        def problems = []
        required.findAll { !row[it] }.each { problems << "${it} is empty" }
        row.each { column, value ->
            def spec = items.properties[column]
            if (!value) return
            if (spec.pattern && !java.util.regex.Pattern.compile(spec.pattern.toString()).matcher(value).find()) {
                problems << "${column} '${value}': ${spec.errorMessage ?: "does not match ${spec.pattern}"}"
            } else if (spec.format == 'file-path' && spec.exists && !resolveSheetPath(sheet, value).exists()) {
                problems << "${column} '${value}': no such file (${resolveSheetPath(sheet, value)})"
            }
        }
        if (row.sample && seen.containsKey(row.sample)) {
            problems << "sample '${row.sample}' already on line ${seen[row.sample]} (one row per sample)"
        }
        if (row.fastq_2 && row.fastq_2 == row.fastq_1) {
            problems << "fastq_2 is the same file as fastq_1"
        }
        if (problems) {
            errors += problems.collect { "${where(n)}: ${it}" }
            return
        }
        seen[row.sample] = n
        def reads = [row.fastq_1, row.fastq_2].findAll().collect { resolveSheetPath(sheet, it) }
        samples << [[id: row.sample, single_end: reads.size() == 1], reads]
    }
    if (errors) {
        error("Invalid samplesheet:\n  - " + errors.join('\n  - '))
    }
    if (!samples) {
        error("Samplesheet ${sheet}: no samples below the header")
    }
    return samples
}

def resolveSheetPath(sheet, String value) {
    if (value.contains('://') || value.startsWith('/')) {
        return file(value)
    }
    return sheet.parent.resolve(value)
}

// [meta, [reads]] per sample from a glob; the part the wildcard matches names the sample
def readsGlobChannel(String pattern) {
    if (!files(pattern)) {
        error("--reads '${pattern}': no files match (quote the glob; pairs as 'path/*_R{1,2}.fastq.gz')")
    }
    return channel
        .fromFilePairs(pattern, checkIfExists: true, size: -1)
        .map { id, files -> readsGlobSample(pattern, id, files) }
}

def readsGlobSample(String pattern, String id, List files) {
    if (files.size() > 2) {
        error("--reads '${pattern}': ${files.size()} files share the sample name '${id}' (${files*.name.join(', ')}); use {1,2} for pairs")
    }
    return [[id: id, single_end: files.size() == 1], files]
}

/*
----------------------------------------------------------------------------------------
    Help and summaries
----------------------------------------------------------------------------------------
*/

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
        id: 'hytax-summary'
        description: ' - the parameters of this run.'
        section_name: 'hytax workflow summary'
        section_href: 'https://github.com/hytax/hytax'
        plot_type: 'html'
        data: |
        """.stripIndent() + html.readLines().collect { "    ${it}" }.join('\n') + '\n'
}

// MultiQC custom content: what was done, with references
def methodsDescriptionText(mmseqs_db, reference_fasta, model_path, route, route_rank, min_identity, min_aln_fraction, min_confidence) {
    def reference = mmseqs_db ? "the MMseqs2 database ${file(mmseqs_db.toString()).name}" : "a database built from ${file(reference_fasta.toString()).name}"
    def model = file(model_path.toString()).name
    def options = [route: route, route_rank: route_rank, min_identity: min_identity, min_confidence: min_confidence]
    def weak = []
    if (min_identity) weak << "hits below the identity minimums ${escapeHtml(min_identity.toString())}"
    if (min_aln_fraction) weak << "a best hit covering less than ${min_aln_fraction} of the read"
    def html = """\
        <h4>Methods</h4>
        <p>Reads were classified with hytax ${workflow.manifest.version} (Nextflow ${workflow.nextflow.version};
        Di Tommaso et al. 2017). Paired reads were joined into one unit per pair. MMseqs2 (Mirdita et al. 2021)
        assigned each read the lowest common ancestor of its best nucleotide hits (<code>mmseqs taxonomy
        --search-type 3</code>) against ${escapeHtml(reference)}. Reads MMseqs2 left
        ${options.route == 'below_rank' ? "unclassified at ${options.route_rank} level" : 'unclassified'}${weak ? " (or placed on ${weak.join(' or ')})" : ''}
        were classified by a BERTax model (Mock et al. 2022), ${escapeHtml(model)}, which filled a rank MMseqs2 left open
        where its probability was at least ${options.min_confidence}. Reports were summarised with MultiQC
        (Ewels et al. 2016).</p>
        <h4>References</h4>
        <ul>
        <li>Di Tommaso P, et al. Nextflow enables reproducible computational workflows. Nat Biotechnol 35, 316-319 (2017). doi:10.1038/nbt.3820</li>
        <li>Mirdita M, Steinegger M, Breitwieser F, Söding J, Levy Karin E. Fast and sensitive taxonomic assignment to metagenomic contigs. Bioinformatics 37, 3029-3031 (2021). doi:10.1093/bioinformatics/btab184</li>
        <li>Mock F, Kretschmer F, Kriese A, Böcker S, Marz M. Taxonomic classification of DNA sequences beyond sequence similarity using deep neural networks. PNAS 119, e2122636119 (2022). doi:10.1073/pnas.2122636119</li>
        <li>Ewels P, Magnusson M, Lundin S, Käller M. MultiQC: summarize analysis results for multiple tools and samples in a single report. Bioinformatics 32, 3047-3048 (2016). doi:10.1093/bioinformatics/btw354</li>
        </ul>
        """.stripIndent()
    return """\
        id: 'hytax-methods-description'
        description: ' - suggested text and references for a methods section.'
        section_name: 'hytax methods description'
        section_href: 'https://github.com/hytax/hytax'
        plot_type: 'html'
        data: |
        """.stripIndent() + html.readLines().collect { "    ${it}" }.join('\n') + '\n'
}

def escapeHtml(String text) {
    return text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')
}

/*
----------------------------------------------------------------------------------------
    Software versions (from every process's versions.yml)
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

/*
========================================================================================
    hytax: samples from --input or --reads
========================================================================================
    [meta, reads] per sample from a samplesheet (checked against assets/schema_input.json)
    or from a --reads glob. meta: id, single_end, long_reads. reads: a flat list of every
    run's files in sheet order: [run1, run2, ...] for single-end, [run1_R1, run1_R2,
    run2_R1, run2_R2, ...] for pairs.

    Two layouts: hytax's own (sample,fastq_1,fastq_2) and nf-core/taxprofiler's
    (sample,run_accession,instrument_platform,fastq_1,fastq_2,fasta). Rows that share a
    sample are runs of it, classified and reported as one sample; a row's key is given by
    the schema's uniqueEntries (sample, plus run_accession where the sheet has it).
----------------------------------------------------------------------------------------
*/

// Platforms whose reads are long (nf-core/taxprofiler's names): meta.long_reads
def longReadPlatforms() {
    return ['OXFORD_NANOPORE', 'PACBIO_SMRT']
}

// [[meta, reads], ...] from a CSV checked against assets/schema_input.json. Relative paths
// are read from the samplesheet's folder. Every problem is collected, then the run stops.
def readSamplesheet(sheet_path, Map sheet_schema) {
    def sheet = file(sheet_path.toString())
    // a spreadsheet's "CSV UTF-8" export starts with a byte-order mark
    def lines = sheet.getText('UTF-8').replaceFirst(/^\uFEFF/, '').readLines()
    def header = sheetHeader(sheet, lines, sheet_schema.items)
    def errors = []
    def runs = []
    lines.eachWithIndex { line, index ->
        def n = index + 1
        if (n == 1 || !line.trim()) return
        def run = sheetRun(sheet, n, line, header, sheet_schema.items)
        if (run.problems) {
            errors += run.problems.collect { "Samplesheet ${sheet}, line ${n}: ${it}" }
        } else {
            runs << run
        }
    }
    errors += duplicateEntries(sheet, runs, header, sheet_schema)
    def samples = runs.groupBy { it.row.sample }.collect { id, sample_runs -> sheetSample(sheet, id, sample_runs, errors) }
    if (errors) {
        error("Invalid samplesheet:\n  - " + errors.join('\n  - '))
    }
    if (!samples) {
        error("Samplesheet ${sheet}: no samples below the header")
    }
    return samples
}

// The header's columns; stops on an unknown, missing or repeated column
def sheetHeader(sheet, List lines, Map items) {
    def columns = items.properties.keySet() as List
    def header = lines ? lines[0].split(',', -1)*.trim() : []
    if (!header || header == ['']) {
        error("Samplesheet ${sheet} is empty: expected a header line 'sample,fastq_1,fastq_2' or '${columns.join(',')}'")
    }
    def unknown = header.findAll { !(it in columns) }
    def missing = (items.required ?: []).findAll { !(it in header) }
    def inputs = readColumns(items)
    if (!inputs.any { it in header }) {
        missing << inputs.join(' or ')
    }
    if (unknown || missing || header.size() != header.unique(false).size()) {
        error("Samplesheet ${sheet}, line 1: header '${lines[0]}' is not valid: expected 'sample,fastq_1,fastq_2' or '${columns.join(',')}'" +
            (unknown ? "; unknown column(s) ${unknown.join(', ')}" : '') +
            (missing ? "; missing column(s) ${missing.join(', ')}" : ''))
    }
    return header
}

// The columns a row takes its reads from, one of which it must fill (the schema's anyOf)
def readColumns(Map items) {
    return (items.anyOf ?: []).collectMany { it.required ?: [] }
}

// One row: [line: n, row: column -> value, files: [R1] or [R1, R2], long_reads, problems]
def sheetRun(sheet, int n, String line, List header, Map items) {
    def fields = line.split(',', -1)*.trim()
    if (fields.size() != header.size()) {
        return [problems: ["${fields.size()} column(s), the header has ${header.size()}"]]
    }
    def row = [header, fields].transpose().collectEntries()
    def problems = []
    // taxprofiler's sheets fill run_accession and instrument_platform on every row
    def required = (items.required ?: []) + ['run_accession', 'instrument_platform'].findAll { it in header }
    required.findAll { !row[it] }.each { problems << "${it} is empty" }
    row.each { column, value ->
        def spec = items.properties[column]
        if (!value) return
        def problem = sheetValueProblem(sheet, value, spec)
        if (problem) problems << "${column} '${value}': ${problem}"
    }
    def given = readColumns(items).findAll { row[it] }
    if (!given) {
        problems << "no reads: fill ${readColumns(items).join(' or ')}"
    } else if (given.size() > 1) {
        problems << "both ${given.join(' and ')} are filled: one row is either FASTQ reads or a FASTA file"
    }
    if (row.fastq_2 && !row.fastq_1) {
        problems << "fastq_2 without fastq_1"
    }
    if (row.fastq_2 && row.fastq_2 == row.fastq_1) {
        problems << "fastq_2 is the same file as fastq_1"
    }
    def long_reads = row.instrument_platform in longReadPlatforms()
    if (long_reads && row.fastq_2) {
        problems << "fastq_2 given for ${row.instrument_platform} reads (long reads are single-end)"
    }
    def files = [row.fastq_1 ?: row.fasta, row.fastq_2].findAll().collect { resolveSheetPath(sheet, it) }
    return [line: n, row: row, files: files, long_reads: long_reads, problems: problems]
}

def sheetValueProblem(sheet, String value, Map spec) {
    if (spec.enum && !(value in spec.enum)) {
        return "${spec.errorMessage ?: 'not allowed'}: one of ${spec.enum.join(', ')}"
    }
    if (spec.pattern && !java.util.regex.Pattern.compile(spec.pattern.toString()).matcher(value).find()) {
        return spec.errorMessage ?: "does not match ${spec.pattern}"
    }
    if (spec.format == 'file-path' && spec.exists && !resolveSheetPath(sheet, value).exists()) {
        return "no such file (${resolveSheetPath(sheet, value)})"
    }
    return null
}

// The schema's uniqueEntries: a file twice, or one sample (and run) on two rows
def duplicateEntries(sheet, List runs, List header, Map sheet_schema) {
    def keys = ([sheet_schema] + (sheet_schema.allOf ?: [])).findAll { it.uniqueEntries }*.uniqueEntries
    def errors = []
    keys.each { key ->
        def columns = key.findAll { it in header }
        def seen = [:]
        runs.each { run ->
            def values = columns.collect { run.row[it] }
            if (!columns || values.any { !it }) return
            if (seen.containsKey(values)) {
                def named = [columns, values].transpose().collect { column, value -> "${column} '${value}'" }.join(', ')
                def hint = columns == ['sample'] ? ' (one row per sample; several runs of a sample need a run_accession column)' : ''
                errors << "Samplesheet ${sheet}, line ${run.line}: ${named} already on line ${seen[values]}${hint}"
            } else {
                seen[values] = run.line
            }
        }
    }
    return errors
}

// [meta, reads] of one sample from its runs; adds to errors when the runs do not go together
def sheetSample(sheet, String id, List runs, List errors) {
    def lines = { List some -> (some.size() == 1 ? 'line ' : 'lines ') + some*.line.join(', ') }
    def single = runs.findAll { it.files.size() == 1 }
    def paired = runs.findAll { it.files.size() == 2 }
    if (single && paired) {
        errors << "Samplesheet ${sheet}, ${lines(runs)}: sample '${id}' mixes single-end (${lines(single)}) and paired-end (${lines(paired)}) runs; the runs of one sample must be all single-end or all paired-end"
    }
    def long_runs = runs.findAll { it.long_reads }
    if (long_runs && long_runs.size() != runs.size()) {
        def short_runs = runs.findAll { !it.long_reads }
        errors << "Samplesheet ${sheet}, ${lines(runs)}: sample '${id}' mixes long-read (${lines(long_runs)}) and short-read (${lines(short_runs)}) runs; give them different sample names"
    }
    // the files of a sample are staged into one task folder, so their names must differ
    def by_name = runs.collectMany { run -> run.files.collect { [it.name, run] } }.groupBy { it[0] }
    by_name.findAll { name, uses -> uses.size() > 1 }.each { name, uses ->
        errors << "Samplesheet ${sheet}, ${lines(uses*.get(1).unique())}: sample '${id}' has more than one file named '${name}'; the runs of a sample are read side by side, so rename one"
    }
    def meta = [id: id, single_end: !paired, long_reads: !long_runs.isEmpty()]
    return [meta, runs.collectMany { it.files }]
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
    return [[id: id, single_end: files.size() == 1, long_reads: false], files]
}

/*
========================================================================================
    hytax: parameter checks
========================================================================================
    Every parameter against nextflow_schema.json (type, enum, pattern, range, paths that
    must exist), plus the rules a schema cannot say (which inputs go together). Every
    problem is collected, then the run stops once with all of them.
----------------------------------------------------------------------------------------
*/

include { checkReference } from './databases'
include { checkModelFolder } from './model'

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
    errors += checkReference(p)
    errors += p.model && file(p.model.toString()).exists() ? checkModelFolder(p.model.toString()) : []  // a missing folder: the schema's message
    return errors
}

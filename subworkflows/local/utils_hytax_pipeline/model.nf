/*
    The BERTax model folder (--model): config.json and model.safetensors. A truncated copy or
    a broken config would otherwise surface only when the first HYTAX_PREDICT task starts,
    after MMseqs2 has run; these checks read the config and the safetensors header (a few KB)
    before any task starts. `hytax check-model --model DIR` checks the same and more (tensor
    names and shapes against the config).
*/

// Keys of config.json that building the model reads
def modelConfigKeys() {
    return ['format', 'architecture', 'head', 'classes']
}

// Problems with a model folder, one string each; [] when it looks usable
def checkModelFolder(String path) {
    def dir = file(path)
    if (!dir.exists()) {
        return ["--model ${path}: no such folder"]
    }
    if (!dir.isDirectory()) {
        return ["--model ${path}: not a folder (a model folder holds config.json and model.safetensors)"]
    }
    def problems = checkModelConfig(dir.resolve('config.json')) + checkSafetensors(dir.resolve('model.safetensors'))
    return problems.collect { "--model ${path}: ${it}" }
}

def checkModelConfig(config_file) {
    if (!config_file.exists()) {
        return ['no config.json (a model folder holds config.json and model.safetensors)']
    }
    def config
    try {
        config = new groovy.json.JsonSlurper().parseText(config_file.text)
    } catch (Exception e) {
        return ["config.json is not valid JSON (${e.message?.readLines()?.first()})"]
    }
    if (!(config instanceof Map)) {
        return ['config.json is not a JSON object']
    }
    def missing = modelConfigKeys().findAll { !config.containsKey(it) }
    if (missing) {
        return ["config.json has no ${missing.collect { "'${it}'" }.join(', ')}: not a complete hytax model config"]
    }
    if (config.format != 'hytax-bertax') {
        return ["config.json: 'format' is '${config.format}', not 'hytax-bertax'"]
    }
    def ranks = config.head instanceof Map ? config.head.ranks : null
    if (!(ranks instanceof List) || !ranks) {
        return ["config.json: 'head.ranks' is not a list of ranks"]
    }
    def classes = config.classes instanceof Map ? config.classes : [:]
    def without = ranks.findAll { !(classes[it] instanceof List) || !classes[it] }
    return without ? ["config.json: 'classes' has no class list for ${without.join(', ')}"] : []
}

// A safetensors file is an 8-byte little-endian header length, a JSON header naming each
// tensor's byte range, then the data: the last range must end exactly at the end of the file,
// which catches a truncated copy as well as random bytes.
def checkSafetensors(weights) {
    if (!weights.exists()) {
        return ['no model.safetensors (a model folder holds config.json and model.safetensors)']
    }
    long size = weights.size()
    if (size < 8) {
        return ["model.safetensors has ${size} bytes: too short for a safetensors file"]
    }
    def problem = null
    weights.withInputStream { stream ->
        long length = java.nio.ByteBuffer.wrap(stream.readNBytes(8)).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong()
        // unsigned: random bytes often read as a negative length
        if (length < 2 || length > size - 8 || length > 100_000_000L) {
            problem = "model.safetensors is not a safetensors file (its first 8 bytes give a header of ${Long.toUnsignedString(length)} bytes, the file has ${size})"
            return
        }
        def header
        try {
            header = new groovy.json.JsonSlurper().parseText(new String(stream.readNBytes((int) length), 'UTF-8'))
        } catch (Exception e) {
            problem = "model.safetensors: the header is not valid JSON (${e.message?.readLines()?.first()})"
            return
        }
        def tensors = header instanceof Map ? header.findAll { name, entry -> name != '__metadata__' } : [:]
        def broken = tensors.find { name, entry -> !(entry instanceof Map && entry.data_offsets instanceof List && entry.data_offsets.size() == 2) }
        if (!tensors || broken) {
            problem = "model.safetensors: the header has ${broken ? "no byte range for tensor '${broken.key}'" : 'no tensors'}"
            return
        }
        long end = tensors.values().collect { it.data_offsets[1] as long }.max()
        long data = size - 8 - length
        if (end != data) {
            def what = end > data ? 'truncated (an incomplete copy or download?)' : 'extra bytes at the end'
            problem = "model.safetensors: the tensors end at byte ${end} of the data but the file holds ${data} bytes after the header: ${what}"
        }
    }
    return problem ? [problem] : []
}

/*
    The reference tiers: which MMseqs2 databases classify the reads, in which order, with which
    claim minimums. One of:
      --databases sheet.csv        db_name,db_type,db_path,db_params (one tier a row, in order)
      --mmseqs_db path/to/db/ref   one prebuilt seqTaxDB, nucleotide or protein (from .dbtype)
      --reference_fasta ... --taxdump ... --tax_mapping ...
                                   built once: a nucleotide DB and (unless --skip_protein_db) a
                                   protein DB of the genes pyrodigal finds in the same genomes
    Everything is checked here, before any task starts.
*/

include { tierTypes } from '../classify_reads'

def dbTypes() {
    return tierTypes().keySet() as List
}

// nucleotide, protein, or null for another MMseqs2 type (profile, ...): the low byte of the
// first 4-byte little-endian integer of <prefix>.dbtype (MMseqs2: 0 amino acids, 1 nucleotides)
def mmseqsDbType(String prefix) {
    def dbtype = file("${prefix}.dbtype")
    if (!dbtype.exists() || dbtype.size() < 4) return null
    def code = dbtype.bytes[0] & 0xff
    return code == 0 ? 'protein' : code == 1 ? 'nucleotide' : null
}

// Problems with a prebuilt seqTaxDB prefix; `what` names where it was given
def checkMmseqsDb(String prefix, taxdump, String what, String expected_type = null) {
    def db = file(prefix)
    if (!file("${prefix}.dbtype").exists()) {
        def hint = db.isDirectory() ? ' (that is a folder: pass the database prefix inside it, e.g. path/to/db/ref)' : ''
        return ["${what} ${prefix}: no ${db.name}.dbtype, not an MMseqs2 database prefix${hint}"]
    }
    def errors = []
    def type = mmseqsDbType(prefix)
    if (type == null) {
        errors << "${what} ${prefix}: neither a nucleotide nor a protein database (${db.name}.dbtype); hytax searches reads against one of those"
    } else if (expected_type && type != expected_type) {
        errors << "${what} ${prefix}: a ${type} database, but db_type says ${expected_type}"
    }
    // <db>_mapping names every taxon the database can answer (the run's compact taxonomy is made of them)
    if (!file("${prefix}_mapping").exists()) {
        errors << "${what} ${prefix}: no ${db.name}_mapping: not a seqTaxDB (run mmseqs createtaxdb)"
    }
    if (!taxdump && !(file("${prefix}_nodes.dmp").exists() && file("${prefix}_names.dmp").exists())) {
        errors << "${what} ${prefix}: no ${db.name}_nodes.dmp/_names.dmp next to it; pass the taxdump it was built from with --taxdump"
    }
    return errors
}

// db_params: extra `mmseqs taxonomy` options, plus the tier's claim minimums
// (--min_identity genus=0.95,phylum=0.8 and --min_aln_fraction 0.5), which hytax takes out
def splitDbParams(String text) {
    def words = text ? text.trim().split(/\s+/) as List : []
    def out = [mmseqs_args: [], min_identity: null, min_aln_fraction: null, errors: []]
    def i = 0
    while (i < words.size()) {
        def word = words[i]
        def key = word.replaceFirst(/^--/, '').replace('-', '_')
        if (key in ['min_identity', 'min_aln_fraction']) {
            if (i + 1 >= words.size()) {
                out.errors << "${word} needs a value"
            } else {
                out[key] = words[i + 1]
            }
            i += 2
        } else {
            out.mmseqs_args << word
            i += 1
        }
    }
    if (out.min_aln_fraction != null && !(out.min_aln_fraction.isNumber() && out.min_aln_fraction.toBigDecimal() >= 0 && out.min_aln_fraction.toBigDecimal() <= 1)) {
        out.errors << "--min_aln_fraction '${out.min_aln_fraction}': expected a number in 0-1"
    }
    if (out.min_identity != null && !(out.min_identity ==~ /^((superkingdom|phylum|genus)=(0(\.\d+)?|1(\.0+)?))(,(superkingdom|phylum|genus)=(0(\.\d+)?|1(\.0+)?))*$/)) {
        out.errors << "--min_identity '${out.min_identity}': expected RANK=FRACTION[,RANK=FRACTION], ranks superkingdom, phylum, genus"
    }
    return out
}

// [tiers, errors]: tiers as [db_meta, folder] in sheet order
def readDatabases(String sheet_path, taxdump) {
    def sheet = file(sheet_path)
    def where = { n -> "Databases sheet ${sheet}, line ${n}" }
    def columns = ['db_name', 'db_type', 'db_path', 'db_params']
    if (!sheet.exists()) {
        return [[], ["--databases ${sheet}: no such file"]]
    }
    def lines = sheet.getText('UTF-8').replaceFirst(/^\uFEFF/, '').readLines()
    def header = lines ? lines[0].split(',', -1)*.trim() : []
    if (header != columns && header != columns[0..2]) {
        return [[], ["${where(1)}: header '${lines ? lines[0] : ''}' is not valid: expected '${columns.join(',')}'"]]
    }
    def tiers = []
    def errors = []
    def seen = [:]
    lines.eachWithIndex { line, index ->
        def n = index + 1
        if (n == 1 || !line.trim()) return
        def fields = line.split(',', -1)*.trim()
        if (fields.size() != header.size()) {
            errors << "${where(n)}: ${fields.size()} column(s), the header has ${header.size()} (db_params may not hold commas: separate minimums with ';' or quote nothing)"
            return
        }
        def row = [header, fields].transpose().collectEntries()
        def problems = []
        if (!(row.db_name ==~ /^[A-Za-z0-9][A-Za-z0-9._-]*$/)) {
            problems << "db_name '${row.db_name}': letters, digits, '.', '_' and '-' only"
        } else if (seen.containsKey(row.db_name)) {
            problems << "db_name '${row.db_name}' already on line ${seen[row.db_name]}"
        } else {
            seen[row.db_name] = n
        }
        if (!(row.db_type in dbTypes())) {
            problems << "db_type '${row.db_type}': expected one of ${dbTypes().join(', ')}"
        }
        if (!row.db_path) {
            problems << 'db_path is empty'
        } else {
            def path = row.db_path.startsWith('/') || row.db_path.contains('://') ? row.db_path : sheet.parent.resolve(row.db_path).toString()
            if (tierTypes()[row.db_type] == 'mmseqs2') {
                problems += checkMmseqsDb(path, taxdump, 'db_path', row.db_type)
            } else if (row.db_type in dbTypes() && !file(path).exists()) {
                problems << "db_path '${row.db_path}': no such file or folder (${path})"
            }
            row.db_path = path
        }
        def params = splitDbParams((row.db_params ?: '').replace(';', ','))
        problems += params.errors.collect { "db_params: ${it}" }
        if (problems) {
            errors += problems.collect { "${where(n)}: ${it}" }
            return
        }
        def db = file(row.db_path)
        def meta = [id: row.db_name, prefix: db.name, db_type: row.db_type,
                    mmseqs_args: params.mmseqs_args.join(' '),
                    min_identity: params.min_identity, min_aln_fraction: params.min_aln_fraction]
        tiers << [meta, db.parent]
    }
    if (!errors && !tiers) {
        errors << "Databases sheet ${sheet}: no databases below the header"
    }
    return [tiers, errors]
}

// What the reference parameters must say together; every problem at once
def checkReference(Map p) {
    def errors = []
    def build = [p.reference_fasta, p.tax_mapping].any()
    def given = [p.mmseqs_db ? '--mmseqs_db' : null, p.databases ? '--databases' : null, build ? '--reference_fasta/--tax_mapping' : null].findAll()
    if (given.size() > 1) {
        errors << "give one reference: --databases (a sheet of prebuilt seqTaxDBs), --mmseqs_db (one), or --reference_fasta/--tax_mapping/--taxdump to build them; not ${given.join(' and ')}"
    } else if (p.databases) {
        errors += readDatabases(p.databases.toString(), p.taxdump)[1]
    } else if (p.mmseqs_db) {
        errors += checkMmseqsDb(p.mmseqs_db.toString(), p.taxdump, '--mmseqs_db')
    } else if (build || p.taxdump) {
        ['reference_fasta', 'taxdump', 'tax_mapping'].findAll { !p[it] }.each {
            errors << "--${it} is needed to build the MMseqs2 databases (with --reference_fasta, --taxdump and --tax_mapping)"
        }
    } else {
        errors << 'no reference: give --databases sheet.csv, --mmseqs_db path/to/db/prefix, or --reference_fasta, --taxdump and --tax_mapping'
    }
    if (p.taxdump && !p.mmseqs_db && !p.databases) {
        def dir = file(p.taxdump.toString())
        ['nodes.dmp', 'names.dmp'].findAll { dir.isDirectory() && !dir.resolve(it).exists() }.each {
            def hint = dir.resolve("${it}.gz").exists() ? ' (found a .gz: MMseqs2 needs it uncompressed)' : ''
            errors << "--taxdump ${dir}: no ${it}${hint}"
        }
    }
    return errors
}

// The prebuilt tiers, in order: [db_meta, folder] with db_meta id, prefix, db_type, mmseqs_args,
// min_identity, min_aln_fraction (null: the pipeline's defaults for that type)
def prebuiltTiers(Map p) {
    if (p.databases) {
        return readDatabases(p.databases.toString(), p.taxdump)[0]
    }
    def db = file(p.mmseqs_db.toString())
    return [[[id: db.name, prefix: db.name, db_type: mmseqsDbType(p.mmseqs_db.toString()), mmseqs_args: '',
              min_identity: null, min_aln_fraction: null], db.parent]]
}

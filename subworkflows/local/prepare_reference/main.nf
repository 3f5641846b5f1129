/*
    PREPARE_REFERENCE: the MMseqs2 seqTaxDB every sample is searched against, and the
    taxonomy route/merge/report resolve taxids with. Either a prebuilt database (--mmseqs_db
    prefix) or one built once from --reference_fasta, --taxdump and --tax_mapping.
*/

include { MMSEQS_CREATEDB    } from '../../../modules/local/mmseqs_createdb'
include { MMSEQS_CREATETAXDB } from '../../../modules/local/mmseqs_createtaxdb'
include { MMSEQS_CREATEINDEX } from '../../../modules/local/mmseqs_createindex'

workflow PREPARE_REFERENCE {

    take:
    mmseqs_db        // string: prefix of a prebuilt seqTaxDB (path/to/db/ref), or null
    reference_fasta  // string: reference sequences (FASTA, gz), or null
    taxdump          // string: folder with nodes.dmp, names.dmp[, merged.dmp], or null
    tax_mapping      // string: sequence id -> taxid TSV, or null

    main:
    ch_versions = channel.empty()

    if (mmseqs_db) {
        // value: [db_meta, db_folder]; db_meta.prefix is the database name inside the folder
        ch_db = channel.value(prebuiltDatabase(mmseqs_db))
    } else {
        // value: [meta, fasta]
        ch_fasta = channel.value([[id: 'reference'], file(reference_fasta, checkIfExists: true)])
        MMSEQS_CREATEDB(ch_fasta)
        // value: [db_meta, seqdb/]
        MMSEQS_CREATETAXDB(
            MMSEQS_CREATEDB.out.db,
            file(taxdump, checkIfExists: true),
            file(tax_mapping, checkIfExists: true)
        )
        // value: [db_meta, taxdb/] -> [db_meta, mmseqs_db/] (with the search index)
        MMSEQS_CREATEINDEX(MMSEQS_CREATETAXDB.out.db)
        ch_db = MMSEQS_CREATEINDEX.out.db
        ch_versions = ch_versions
            .mix(MMSEQS_CREATEDB.out.versions)
            .mix(MMSEQS_CREATETAXDB.out.versions)
            .mix(MMSEQS_CREATEINDEX.out.versions)
    }

    // value: [tax_meta, folder]: a taxdump folder (tax_meta.prefix null), or the database
    // folder whose <prefix>_nodes.dmp/_names.dmp/_merged.dmp hold the taxonomy
    if (taxdump) {
        ch_taxdump = channel.value([[id: 'taxdump', prefix: null], file(taxdump, checkIfExists: true)])
    } else {
        ch_taxdump = ch_db.map { db_meta, folder -> [[id: db_meta.id, prefix: db_meta.prefix], folder] }
    }

    emit:
    db       = ch_db        // value: [db_meta, folder]
    taxdump  = ch_taxdump   // value: [tax_meta, folder]
    versions = ch_versions  // channel: versions.yml
}

// [db_meta, folder] of a database given by its prefix, e.g. path/to/db/ref
def prebuiltDatabase(String prefix) {
    def db = file(prefix)
    return [[id: db.name, prefix: db.name], db.parent]
}

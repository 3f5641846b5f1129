/*
    PREPARE_REFERENCE: the MMseqs2 databases every sample is searched against, as ordered
    tiers, and the taxonomy that claims, merge and reports resolve taxids with.
    Prebuilt (--databases sheet, or --mmseqs_db) or built once from --reference_fasta,
    --taxdump and --tax_mapping: a nucleotide DB and, unless --skip_protein_db, a protein DB
    of the genes pyrodigal finds in the same sequences (tier 2).
*/

include { HYTAX_GENES        } from '../../../modules/local/hytax_genes'
include { HYTAX_TAXONOMY     } from '../../../modules/local/hytax_taxonomy'
include { MMSEQS_CREATEDB    } from '../../../modules/local/mmseqs_createdb'
include { MMSEQS_CREATETAXDB } from '../../../modules/local/mmseqs_createtaxdb'
include { MMSEQS_CREATEINDEX } from '../../../modules/local/mmseqs_createindex'
include { prebuiltTiers      } from '../utils_hytax_pipeline/databases'
include { tierTypes          } from '../classify_reads'

workflow PREPARE_REFERENCE {

    take:
    parameters  // map: params (reference options; checked by PIPELINE_INITIALISATION)

    main:
    ch_versions = channel.empty()
    def p = parameters

    if (p.mmseqs_db || p.databases) {
        // [db_meta, folder] per tier, in the sheet's order
        ch_dbs = channel.fromList(prebuiltTiers(p).withIndex().collect { item, i -> [item[0] + [order: i], item[1]] })
    } else {
        def fasta   = file(p.reference_fasta, checkIfExists: true)
        def mapping = file(p.tax_mapping, checkIfExists: true)
        // [meta, fasta, mapping]: the reference as nucleotides, and its proteins
        ch_sources = channel.of([[id: 'reference', db_type: 'nucleotide', order: 0], fasta, mapping])
        if (!p.skip_protein_db) {
            HYTAX_GENES(channel.value([[id: 'reference_proteins', db_type: 'protein', order: 1], fasta]), mapping)
            ch_sources = ch_sources.mix(
                HYTAX_GENES.out.proteins.combine(HYTAX_GENES.out.mapping)
            )
            ch_versions = ch_versions.mix(HYTAX_GENES.out.versions)
        }
        ch_fasta = ch_sources.multiMap { meta, sequences, seq2taxid ->
            fasta:   [meta, sequences]
            mapping: [meta.id, seq2taxid]
        }
        // [db_meta, seqdb/] -> [db_meta, seqdb/, mapping] -> [db_meta, taxdb/] -> [db_meta, mmseqs_db/]
        MMSEQS_CREATEDB(ch_fasta.fasta)
        ch_taxdb_input = MMSEQS_CREATEDB.out.db
            .map { db_meta, seqdb -> [db_meta.id, db_meta, seqdb] }
            .join(ch_fasta.mapping, failOnDuplicate: true, failOnMismatch: true)
            .map { id, db_meta, seqdb, seq2taxid -> [db_meta, seqdb, seq2taxid] }
        MMSEQS_CREATETAXDB(ch_taxdb_input, file(p.taxdump, checkIfExists: true))
        MMSEQS_CREATEINDEX(MMSEQS_CREATETAXDB.out.db)
        ch_dbs = MMSEQS_CREATEINDEX.out.db.map { db_meta, folder ->
            [db_meta + [mmseqs_args: '', min_identity: null, min_aln_fraction: null], folder]
        }
        ch_versions = ch_versions
            .mix(MMSEQS_CREATEDB.out.versions)
            .mix(MMSEQS_CREATETAXDB.out.versions)
            .mix(MMSEQS_CREATEINDEX.out.versions)
    }

    // value: [[db_meta, folder], ...] in tier order; db_meta gets tier (1, 2, ...), n_tiers and
    // the claim minimums of its type where the sheet gave none
    ch_tiers = ch_dbs
        .toSortedList { a, b -> a[0].order <=> b[0].order }
        .map { dbs -> dbs.withIndex().collect { item, i -> [tierMeta(item[0], i + 1, dbs.size(), p), item[1]] } }

    // value: [tax_meta, folder]: a taxdump folder (tax_meta.prefix null), or the first
    // database's folder whose <prefix>_nodes.dmp/_names.dmp/_merged.dmp hold the taxonomy
    if (p.taxdump) {
        ch_full_taxonomy = channel.value([[id: 'taxdump', prefix: null], file(p.taxdump, checkIfExists: true)])
    } else {
        ch_full_taxonomy = ch_tiers.map { tiers -> [[id: tiers[0][0].id, prefix: tiers[0][0].prefix], tiers[0][1]] }
    }
    // The full taxdump is read once per run: a compact taxonomy of the taxa the tiers and the
    // model can name (their lineages and merged ids) is what every per-sample step loads.
    // An unknown taxid in a tier's mapping (a database built on another taxonomy) stops here.
    ch_mappings = ch_tiers.map { tiers ->
        tiers.collect { db_meta, folder -> folder.resolve("${db_meta.prefix}_mapping") }
    }
    HYTAX_TAXONOMY(ch_full_taxonomy, ch_mappings, file(p.model, checkIfExists: true))
    ch_taxdump = HYTAX_TAXONOMY.out.taxonomy.map { meta, compact -> [[id: 'taxonomy', prefix: null], compact] }
    ch_versions = ch_versions.mix(HYTAX_TAXONOMY.out.versions)

    emit:
    tiers    = ch_tiers     // value: [[db_meta, folder], ...] in tier order
    taxdump  = ch_taxdump   // value: [tax_meta, compact taxonomy file]
    versions = ch_versions  // channel: versions.yml
}

// A tier's meta: its place, and the claim minimums (the sheet's, else the defaults of its type)
def tierMeta(Map db_meta, int tier, int n_tiers, Map p) {
    def protein = db_meta.db_type == 'protein'
    def min_identity = db_meta.min_identity != null ? db_meta.min_identity : (protein ? p.protein_min_identity : p.min_identity)
    def min_aln_fraction = db_meta.min_aln_fraction != null ? db_meta.min_aln_fraction : (protein ? p.protein_min_aln_fraction : p.min_aln_fraction)
    return db_meta + [tier: tier, n_tiers: n_tiers, classifier: tierTypes()[db_meta.db_type],
                      min_identity: min_identity ?: '', min_aln_fraction: min_aln_fraction ?: 0]
}

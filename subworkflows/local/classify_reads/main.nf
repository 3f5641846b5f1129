/*
    CLASSIFY_READS: per sample, MMseqs2 first, BERTax for the reads MMseqs2 leaves open,
    then one table with every read once.
*/

include { HYTAX_PREPARE   } from '../../../modules/local/hytax_prepare'
include { MMSEQS_TAXONOMY } from '../../../modules/local/mmseqs_taxonomy'
include { HYTAX_ROUTE     } from '../../../modules/local/hytax_route'
include { HYTAX_PREDICT   } from '../../../modules/local/hytax_predict'
include { HYTAX_MERGE     } from '../../../modules/local/hytax_merge'

workflow CLASSIFY_READS {

    take:
    reads           // channel: [meta, [reads]]
    db              // value:   [db_meta, folder]  (the same database for every sample)
    taxdump         // value:   [tax_meta, folder]
    model           // value:   model folder
    route           // string:  unclassified | below_rank
    route_rank      // string:  superkingdom | phylum | genus
    min_identity    // string:  'genus=0.95,phylum=0.8' or ''
    min_confidence  // number:  BERTax probability needed to fill a rank

    main:
    ch_versions = channel.empty()

    // [meta, units.fasta.gz]: one record per read or pair; fails on malformed input
    HYTAX_PREPARE(reads)
    ch_units = HYTAX_PREPARE.out.reads

    // [meta, lca.tsv], [meta, aln.tsv]
    MMSEQS_TAXONOMY(ch_units, db)

    // [meta, units, lca.tsv, aln.tsv]
    ch_route_input = ch_units
        .join(MMSEQS_TAXONOMY.out.lca, failOnDuplicate: true)
        .join(MMSEQS_TAXONOMY.out.aln, failOnDuplicate: true)
    // [meta, claims.tsv], [meta, routed.fasta.gz]
    HYTAX_ROUTE(ch_route_input, taxdump, route, route_rank, min_identity ?: '')

    // [meta, bertax.tsv]
    HYTAX_PREDICT(HYTAX_ROUTE.out.routed, model)

    // [meta, units, claims.tsv, bertax.tsv]
    ch_merge_input = ch_units
        .join(HYTAX_ROUTE.out.claims, failOnDuplicate: true)
        .join(HYTAX_PREDICT.out.predictions, failOnDuplicate: true)
    // [meta, hytax.tsv]
    HYTAX_MERGE(ch_merge_input, taxdump, min_confidence)

    ch_versions = ch_versions
        .mix(HYTAX_PREPARE.out.versions)
        .mix(MMSEQS_TAXONOMY.out.versions)
        .mix(HYTAX_ROUTE.out.versions)
        .mix(HYTAX_PREDICT.out.versions)
        .mix(HYTAX_MERGE.out.versions)

    emit:
    merged   = HYTAX_MERGE.out.merged  // channel: [meta, hytax.tsv]
    versions = ch_versions             // channel: versions.yml
}

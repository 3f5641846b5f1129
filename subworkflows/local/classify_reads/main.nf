/*
    CLASSIFY_READS: per sample, every database tier (MMseqs2; a tier's raw output becomes
    standard claims), then the routing keeps each read's first closing tier, BERTax classifies
    the reads every tier left open, and one table holds every read once.
*/

include { HYTAX_PREPARE   } from '../../../modules/local/hytax_prepare'
include { MMSEQS_TAXONOMY } from '../../../modules/local/mmseqs_taxonomy'
include { HYTAX_CLAIMS    } from '../../../modules/local/hytax_claims'
include { HYTAX_ROUTE     } from '../../../modules/local/hytax_route'
include { HYTAX_PREDICT   } from '../../../modules/local/hytax_predict'
include { HYTAX_MERGE     } from '../../../modules/local/hytax_merge'

workflow CLASSIFY_READS {

    take:
    reads           // channel: [meta, [reads]]
    tiers           // value:   [[db_meta, folder], ...] in tier order (the same for every sample)
    taxdump         // value:   [tax_meta, folder]
    model           // value:   model folder

    main:
    ch_versions = channel.empty()

    // [meta, units.fasta.gz]: one record per read or pair; fails on malformed input
    HYTAX_PREPARE(reads)
    ch_units = HYTAX_PREPARE.out.reads

    // one search per sample and tier; the tier's meta: sample meta + db_name, db_type, tier,
    // and `sample`, the sample's own meta, to group the tiers again
    ch_search = ch_units
        .combine(tiers.flatMap { it })
        .map { meta, units, db_meta, db ->
            def tier_meta = meta + [classifier: db_meta.classifier, db_name: db_meta.id, db_type: db_meta.db_type,
                                    tier: db_meta.tier, n_tiers: db_meta.n_tiers, sample: meta,
                                    min_identity: db_meta.min_identity, min_aln_fraction: db_meta.min_aln_fraction]
            [tier_meta, units, db_meta, db]
        }
        .branch { tier_meta, units, db_meta, db ->
            mmseqs2: tier_meta.classifier == 'mmseqs2'
        }

    // [tier_meta, [raw tables]]: each classifier's own output (one branch each)
    ch_mmseqs2 = ch_search.mmseqs2.multiMap { tier_meta, units, db_meta, db ->
        reads: [tier_meta, units]
        db:    [db_meta, db]
    }
    MMSEQS_TAXONOMY(ch_mmseqs2.reads, ch_mmseqs2.db)
    ch_raw = channel.empty()
        .mix(MMSEQS_TAXONOMY.out.tables.map { tier_meta, lca, aln -> [tier_meta, [lca, aln]] })
    ch_versions = ch_versions.mix(MMSEQS_TAXONOMY.out.versions)

    // [tier_meta, claims.tsv]: standard claims, cut by the tier's minimums
    ch_claims_input = ch_raw
        .map { tier_meta, raw -> [tier_meta.sample.id, tier_meta, raw] }
        .combine(ch_units.map { meta, units -> [meta.id, units] }, by: 0)
        .map { id, tier_meta, raw, units -> [tier_meta, units, raw] }
    HYTAX_CLAIMS(ch_claims_input, taxdump)

    // [meta, units, [claims in tier order]]
    ch_route_input = HYTAX_CLAIMS.out.claims
        .map { tier_meta, claims -> [groupKey(tier_meta.sample, tier_meta.n_tiers), [tier_meta.tier, claims]] }
        .groupTuple()
        .map { key, tier_claims -> [key.target, tier_claims.sort { it[0] }.collect { it[1] }] }
        .join(ch_units, failOnDuplicate: true)
        .map { meta, claims, units -> [meta, units, claims] }
    // [meta, kept.tsv], [meta, routed.fasta.gz]
    HYTAX_ROUTE(ch_route_input)

    // [meta, bertax.tsv]
    HYTAX_PREDICT(HYTAX_ROUTE.out.routed, model)

    // [meta, units, kept.tsv, bertax.tsv]
    ch_merge_input = ch_units
        .join(HYTAX_ROUTE.out.kept, failOnDuplicate: true)
        .join(HYTAX_PREDICT.out.predictions, failOnDuplicate: true)
    // [meta, hytax.tsv]
    HYTAX_MERGE(ch_merge_input, taxdump)

    ch_versions = ch_versions
        .mix(HYTAX_PREPARE.out.versions)
        .mix(HYTAX_CLAIMS.out.versions)
        .mix(HYTAX_ROUTE.out.versions)
        .mix(HYTAX_PREDICT.out.versions)
        .mix(HYTAX_MERGE.out.versions)

    emit:
    merged   = HYTAX_MERGE.out.merged   // channel: [meta, hytax.tsv]
    claims   = HYTAX_CLAIMS.out.claims  // channel: [tier_meta, claims.tsv], per sample and tier
    versions = ch_versions              // channel: versions.yml
}

// The database types a tier can be, and the classifier that searches each: one entry per type,
// next to the branch above that runs that classifier (docs/classifiers.md)
def tierTypes() {
    return [nucleotide: 'mmseqs2', protein: 'mmseqs2']
}

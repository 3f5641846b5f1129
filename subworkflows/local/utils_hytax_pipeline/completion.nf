/*
========================================================================================
    hytax: the end of a run
========================================================================================
    A one-line summary once every task has finished.
----------------------------------------------------------------------------------------
*/

def completionSummary(outdir) {
    if (workflow.success) {
        def cached = workflow.stats.cachedCount
        def note = workflow.stats.succeedCount == 0 && cached > 0 ? ' (all tasks cached)' : ''
        log.info "hytax ${workflow.manifest.version}: done in ${workflow.duration}; results in ${outdir}${note}"
    }
}

/*
========================================================================================
    hytax: methods text for the MultiQC report
========================================================================================
    Built from params: what this run did, with references.
----------------------------------------------------------------------------------------
*/

include { escapeHtml } from './summary'

// MultiQC custom content: what was done, with references. Reads params itself (as the
// parameter summary does), so no workflow has to carry a value only to print it.
def methodsDescriptionText(Map p = params) {
    def reference = p.mmseqs_db ? "the MMseqs2 database ${file(p.mmseqs_db.toString()).name}" : "a database built from ${file(p.reference_fasta.toString()).name}"
    def model = file(p.model.toString()).name
    def weak = []
    if (p.min_identity) weak << "hits below the identity minimums ${escapeHtml(p.min_identity.toString())}"
    if (p.min_aln_fraction) weak << "a best hit covering less than ${p.min_aln_fraction} of the read"
    def html = """\
        <h4>Methods</h4>
        <p>Reads were classified with hytax ${workflow.manifest.version} (Nextflow ${workflow.nextflow.version};
        Di Tommaso et al. 2017). Paired reads were joined into one unit per pair. MMseqs2 (Mirdita et al. 2021)
        assigned each read the lowest common ancestor of its best nucleotide hits (<code>mmseqs taxonomy
        --search-type 3</code>) against ${escapeHtml(reference)}. Reads MMseqs2 left
        ${p.route == 'below_rank' ? "unclassified at ${p.route_rank} level" : 'unclassified'}${weak ? " (or placed on ${weak.join(' or ')})" : ''}
        were classified by a BERTax model (Mock et al. 2022), ${escapeHtml(model)}, which filled a rank MMseqs2 left open
        where its probability was at least ${p.min_confidence}. Reports were summarised with MultiQC
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
        id: '${workflow.manifest.name.replace('/', '-')}-methods-description'
        description: ' - suggested text and references for a methods section.'
        section_name: 'hytax methods description'
        section_href: 'https://github.com/hytax/hytax'
        plot_type: 'html'
        data: |
        """.stripIndent() + html.readLines().collect { "    ${it}" }.join('\n') + '\n'
}

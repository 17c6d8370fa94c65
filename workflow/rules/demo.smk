# Rebuild the demo's data and shipped models from scratch (not part of the default target):
#   snakemake --cores 2 --config demo_assets=1 -- demo_assets
# The corpus is deterministic from its seed; training is seeded too.
DEMO = config.get("demo_dir", "data/demo")
ASSETS = "src/musiclime/assets"


rule generate_demo_corpus:
    output:
        manifest=f"{DEMO}/manifest.csv",
    params:
        seed=config.get("demo_seed", 0),
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{DEMO}/logs/generate_demo_corpus.log",
    threads: workflow.cores
    shell:
        "python -m musiclime_demo.corpus --out $(dirname {output.manifest}) --seed {params.seed} "
        "--workers {threads} > {log} 2>&1"


rule train_demo_separator:
    input:
        manifest=rules.generate_demo_corpus.output.manifest,
    output:
        weights=directory(f"{ASSETS}/demo_separator"),
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{DEMO}/logs/train_demo_separator.log",
    threads: workflow.cores
    shell:
        "python -m musiclime_demo.train_separator --manifest {input.manifest} "
        "--out {output.weights} > {log} 2>&1"


rule train_demo_classifier:
    input:
        manifest=rules.generate_demo_corpus.output.manifest,
    output:
        weights=directory(f"{ASSETS}/demo_classifier"),
    conda:
        "../envs/musiclime.yaml"
    log:
        f"{DEMO}/logs/train_demo_classifier.log",
    threads: workflow.cores
    shell:
        "python -m musiclime_demo.train_classifier --manifest {input.manifest} "
        "--out {output.weights} > {log} 2>&1"


rule demo_assets:
    input:
        rules.train_demo_separator.output.weights,
        rules.train_demo_classifier.output.weights,

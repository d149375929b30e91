#!/bin/sh
# The reference for slurm_overhead.rs: Snakemake's Slurm executor plugin on the same cluster,
# running N independent rules that run `true` (default 100; medfusion's figure per node is
# comparable at any N). Installs Snakemake into a virtual environment under $TMPDIR.
#
#   scripts/slurm-local.sh start && benches/benches/slurm_overhead_reference.sh [N]
#
# Accounting is disabled on the local cluster, so the plugin's default status command
# (sacct) never learns that a job ended: it is told to use squeue. With its default polling
# (first check after 40 s, then every 10 s) the run never ended here: jobs finish and leave
# the queue (MinJobAge=30 s) before the plugin first looks, and it waited on them for over
# ten minutes. So it polls every second from the first second, as a user tuning it would.
set -eu
n=${1:-100}
venv=${TMPDIR:-/tmp}/medfusion-snakemake
[ -x "$venv/bin/snakemake" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q snakemake==9.27.1 snakemake-executor-plugin-slurm==2.8.0
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/Snakefile" <<SMK
rule all:
    input: expand('out/n{i}.done', i=range($n))

rule node:
    output: 'out/n{i}.done'
    shell: 'true && touch {output}'
SMK
cd "$work"
partition=$(sinfo -h -o '%P' | sed -n 's/\*$//p' | head -n 1)
start=$(date +%s.%N)
"$venv/bin/snakemake" --executor slurm --jobs 64 --quiet all \
    --slurm-status-command squeue --slurm-no-account \
    --default-resources "slurm_partition=$partition" mem_mb=1000 runtime=10 \
    --seconds-between-status-checks 1 --slurm-init-seconds-before-status-checks 1 \
    > "$work/log.txt" 2>&1
end=$(date +%s.%N)
echo "snakemake: $n rules in $(python3 -c "print(round($end - $start, 1))") s"

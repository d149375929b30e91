#!/usr/bin/env bash
# A one-machine Slurm cluster for medfusion's tests: slurmctld + slurmd on this host, munge
# authentication, cons_tres scheduling, no accounting daemon (so no `sacct`, as on many real
# clusters). Needs root and Debian's `slurm-wlm` and `munge` packages (`install` gets them).
#
#   scripts/slurm-local.sh install   # apt-get install slurm-wlm munge
#   scripts/slurm-local.sh start     # write slurm.conf, start munged, slurmctld, slurmd; wait
#   scripts/slurm-local.sh status    # sinfo
#   scripts/slurm-local.sh stop      # stop the daemons
#
# The node gets this machine's CPUs and 80% of its memory; one partition, `debug`, the
# default. Logs: /var/log/slurm/.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)"

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "slurm-local: run as root (it starts system daemons)" >&2
        exit 1
    fi
}

write_conf() {
    mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
    cat > "$CONF" <<CONF
# Written by medfusion's scripts/slurm-local.sh: a one-machine cluster for tests.
ClusterName=medfusion-local
SlurmctldHost=$HOST
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without it a job asks for the whole node's memory and jobs run one at a time.
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Jobs start and finish within a second or two: poll the queue often.
SchedulerParameters=sched_interval=1
MessageTimeout=20
# Finished jobs leave squeue after this many seconds (as on real clusters, they do leave).
MinJobAge=30
KillWait=5
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    need_root
    write_conf
    if ! pgrep -x munged >/dev/null; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        if [ ! -s /etc/munge/munge.key ]; then
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
        chmod 0400 /etc/munge/munge.key
        if id munge >/dev/null 2>&1; then
            su -s /bin/sh munge -c "munged --force" || munged --force
        else
            munged --force
        fi
    fi
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    # Wait until the node takes jobs.
    for _ in $(seq 1 60); do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            sinfo
            return 0
        fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "slurm-local: the node did not come up; see /var/log/slurm/" >&2
    sinfo >&2 || true
    tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
}

stop() {
    need_root
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    for _ in $(seq 1 20); do
        { pgrep -x slurmd || pgrep -x slurmctld; } >/dev/null || return 0
        sleep 0.5
    done
}

case "${1:-}" in
    install)
        need_root
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
        ;;
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *)
        echo "usage: $0 install|start|status|stop" >&2
        exit 2
        ;;
esac

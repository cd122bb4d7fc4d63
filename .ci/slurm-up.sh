#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the sweep tests: munged, slurmctld and
# slurmd (as root), with configuration, state and spool under one temporary folder.
#
#   eval "$(.ci/slurm-up.sh)"      # exports SLURM_CONF and CODATS_SLURM_DIR
#   ...                            # sbatch, squeue, sinfo work
#   .ci/slurm-down.sh              # stops the daemons by their PIDs
#
# Installs Debian's slurm-wlm and munge when missing. Progress goes to stderr; stdout carries
# only the export lines.
set -euo pipefail

log() { echo "slurm-up: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq slurm-wlm munge >&2
fi

DIR="${CODATS_SLURM_DIR:-$(mktemp -d /tmp/codats-slurm.XXXXXX)}"
mkdir -p "$DIR"/{state,spool,log,munge,run}
chmod 755 "$DIR"

# munge: a fresh key, its own socket/pid/log under $DIR.
MUNGE_SOCKET="$DIR/munge/munge.socket.2"
if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 700 "$DIR/munge"
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" >&2
for _ in $(seq 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done
munge --socket="$MUNGE_SOCKET" -n </dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null \
    || { log "munge does not work"; exit 1; }

HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=codats-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MaxArraySize=10001
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=60
KillWait=5
Waittime=0
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# slurmd loads a cgroup plugin even with proctrack/linuxproc and task/none; let it detect the
# hierarchy (v1 or v2) and constrain nothing.
printf 'CgroupPlugin=autodetect\nConstrainCores=no\nConstrainRAMSpace=no\n' > "$DIR/cgroup.conf"
export SLURM_CONF="$DIR/slurm.conf"

slurmctld -f "$SLURM_CONF" >&2
slurmd -f "$SLURM_CONF" >&2

for i in $(seq 120); do
    state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle|mix|alloc) break ;;
        down*|drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)"
if [ "$state" != "idle" ] && [ "$state" != "mix" ]; then
    log "node did not come up (state: '${state}'); logs:"
    tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
fi
log "cluster up: $(sinfo -h -o '%P %a %D %t %c CPUs')  (SLURM_CONF=$SLURM_CONF)"
echo "export SLURM_CONF='$SLURM_CONF'"
echo "export CODATS_SLURM_DIR='$DIR'"

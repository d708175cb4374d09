#!/usr/bin/env bash
# A one-node Ceph on 127.0.0.1 for the object-store tests: one monitor on port $3, one OSD on
# memstore (no disk; it takes free ports from 6800 up), and radosgw serving S3 on
# 127.0.0.1:$2. Everything lives in $1. Authentication inside the cluster is off; radosgw's
# S3 users still sign their requests.
# Usage: ceph.sh DIR S3_PORT MON_PORT; the daemons write their pid files to DIR/run.
set -euo pipefail
D=$1
PORT=$2
MON_PORT=$3
rm -rf "$D"
mkdir -p "$D"/run "$D"/log "$D"/mon "$D"/osd/ceph-0
FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
ms bind ipv4 = true
auth cluster required = none
auth service required = none
auth client required = none
# without crc modes the daemons never authenticate to each other with auth off
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 460
osd max object namespace len = 64
run dir = $D/run
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
mon data = $D/mon/\$cluster-\$id
osd data = $D/osd/\$cluster-\$id
keyring = $D/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
CONF
C=(-c "$D/ceph.conf")
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon "${C[@]}" -i a
ceph "${C[@]}" --connect-timeout 60 osd create >/dev/null
ceph-osd "${C[@]}" -i 0 --mkfs >/dev/null 2>&1
ceph-osd "${C[@]}" -i 0 2>/dev/null
radosgw "${C[@]}" -n client.rgw.a

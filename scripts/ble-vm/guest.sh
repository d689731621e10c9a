# Runs as root inside the guest of scripts/ble-vm/run.sh (bash), with the
# host's / read-only as its root and the share folder at /tmp/share, which
# holds ble.test and skein built on the host. Results go to
# /tmp/share/out: one line per check in summary.txt ("PASS ..." or
# "FAIL ..."), "FIGURE ..." lines, and the logs.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
S=/tmp/share; O=$S/out; mkdir -p $O
exec > $O/guest.log 2>&1
set -x
touch $O/booted
result() { echo "$*" >> $O/summary.txt; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2fs", b-a}'; }

# D-Bus, two virtual LE controllers (btvirt needs a retry now and then),
# bluetoothd, both powered.
mkdir -p /run/dbus
dbus-daemon --system --fork --print-pid
for try in 1 2 3 4 5; do
  btvirt -L -l2 > $O/btvirt.log 2>&1 &
  BV=$!
  sleep 3
  if kill -0 $BV 2>/dev/null && [ -e /sys/class/bluetooth/hci1 ]; then echo "btvirt up after try $try"; break; fi
  kill $BV 2>/dev/null; sleep 1
done
# bluetoothd (BlueZ 5.66 here) has been seen to crash (SIGSEGV) as a GATT
# client's acquired notify/write sockets are released at the end of
# TestBlueZGATTFallback. A crashed daemon is a BlueZ bug, not a failure of
# the test that triggered it, but every later step needs a daemon: it is
# started again, and the crash is reported as a NOTE line.
start_bluetoothd() {
  /usr/libexec/bluetooth/bluetoothd -n >> $O/bluetoothd.log 2>&1 &
  BTD=$!
  sleep 3
  btmgmt -i hci0 power on; btmgmt -i hci1 power on
}
ensure_bluetoothd() {
  kill -0 $BTD 2>/dev/null && return 0
  result "NOTE bluetoothd exited during $1 (see out/bluetoothd.log); started again"
  start_bluetoothd
}
# A fresh daemon and controllers: bluetoothd stopped, both controllers
# powered off (which drops their LE links) and on again under a new
# daemon. BlueZ 5.66 here has been seen to keep state from one test into
# the next (a GATT client's notify session still "acquired", a device it
# believes "already connected"), after which the next test cannot connect.
fresh_bluetoothd() {
  kill $BTD 2>/dev/null; wait $BTD 2>/dev/null
  btmgmt -i hci0 power off; btmgmt -i hci1 power off
  start_bluetoothd
}
start_bluetoothd
if ! [ -e /sys/class/bluetooth/hci1 ]; then result "FAIL guest: btvirt made no second controller"; exit 0; fi
cd /tmp
# The share is a 9p mount without a cache: every process start (each test,
# each plugin process, each CLI call) would read its binary over 9p
# again. Read them once into the guest's tmpfs.
t0=$(now)
cp $S/ble.test /tmp/ble.test && cp $S/skein /tmp/skein-bin
echo "FIGURE guest: binaries copied to tmpfs in $(since $t0)" >> $O/figures.txt

# The two skein nodes run first, on the daemon as it booted: three runs
# where they came after the plugin tests (one after a failed GATT
# fallback, two after bluetoothd was restarted and the controllers
# power-cycled) never saw each other, while the same nodes met in 29 s
# after a clean run of the tests.
two_nodes() {
  # 2. Two skein nodes made by `skein init --preset ble`, one per controller,
  #    BLE their only transport: they find each other, one makes a group,
  #    the other joins, messages both ways.
  SK=/tmp/skein-bin
  $SK init --preset ble --data-dir /tmp/a > /dev/null
  $SK init --preset ble --data-dir /tmp/b > /dev/null
  sed -i 's/adapter: hci0/adapter: hci1/' /tmp/b/skein.yaml
  # In the emulated guest a plugin process takes seconds to start (a 70 MB
  # binary over 9p, an emulated CPU): the store and the network run linked
  # in, the BLE plugin out of process (the preset's default) with time to
  # start.
  for n in a b; do
    sed -i -e 's/^    id: store.pebble$/&\n    mode: linked/' -e 's/^    id: network.ipfs$/&\n    mode: linked/' \
      -e 's/^    id: transport.ble$/&\n    start_timeout: 120s/' /tmp/$n/skein.yaml
  done
  cp /tmp/a/skein.yaml $O/skein-a.yaml
  t0=$(now)
  $SK run --data-dir /tmp/a > $O/node-a.log 2>&1 &
  A=$!
  $SK run --data-dir /tmp/b > $O/node-b.log 2>&1 &
  B=$!
  for i in $(seq 1 180); do
    $SK id --json --data-dir /tmp/a > /tmp/a.id 2>/dev/null && $SK id --json --data-dir /tmp/b > /tmp/b.id 2>/dev/null && break
    sleep 1
  done
  echo "FIGURE two skein nodes (ble preset): both answering their CLI $(since $t0) after start (process start in the emulated guest)" >> $O/figures.txt
  t0=$(now)
  PA=$(sed -n 's/.*"peer_id": *"\([^"]*\)".*/\1/p' /tmp/a.id); PB=$(sed -n 's/.*"peer_id": *"\([^"]*\)".*/\1/p' /tmp/b.id)
  connected=""
  for i in $(seq 1 240); do
    if $SK peers --json --data-dir /tmp/a 2>/dev/null | grep -q "$PB"; then connected=yes; break; fi
    sleep 0.5
  done
  if [ -z "$connected" ]; then
    result "FAIL two skein nodes: not connected over BLE within 120 s of both answering"
  else
    result "PASS two skein nodes connected over BLE"
    echo "FIGURE two skein nodes (ble preset): connected over BLE $(since $t0) after both answered (advertise, scan, identity read, dial, Noise, yamux)" >> $O/figures.txt
    $SK peers --data-dir /tmp/a > $O/peers-a.txt 2>&1
    t1=$(now)
    $SK group create --data-dir /tmp/a offline > /dev/null
    TOK=$($SK group invite --data-dir /tmp/a offline 2>/dev/null)
    if $SK group join --data-dir /tmp/b --name offline "$TOK" > $O/join.txt 2>&1; then
      echo "FIGURE two skein nodes: group joined over BLE in $(since $t1)" >> $O/figures.txt
      # What a sends before it has read b's join stays closed to b
      # (docs/cli.md): wait until a lists b.
      for i in $(seq 1 120); do
        [ "$($SK group members --json --data-dir /tmp/a offline 2>/dev/null | grep -o '"account"' | wc -l)" = 2 ] && break
        sleep 0.5
      done
      echo "FIGURE two skein nodes: a lists b as a member $(since $t1) after the join began" >> $O/figures.txt
      t2=$(now)
      $SK send --data-dir /tmp/a offline "hello from a over ble" > /dev/null
      $SK send --data-dir /tmp/b offline "hello from b over ble" > /dev/null
      ok=""
      for i in $(seq 1 120); do
        ma=$($SK messages --json --data-dir /tmp/a offline 2>/dev/null); mb=$($SK messages --json --data-dir /tmp/b offline 2>/dev/null)
        if echo "$ma" | grep -q "hello from b over ble" && echo "$mb" | grep -q "hello from a over ble"; then ok=yes; break; fi
        sleep 0.5
      done
      if [ -n "$ok" ]; then
        result "PASS two skein nodes: group joined, messages both ways"
        echo "FIGURE two skein nodes: a message each way, both held, in $(since $t2)" >> $O/figures.txt
      else
        result "FAIL two skein nodes: messages not exchanged within 60 s"
      fi
    else
      result "FAIL two skein nodes: join failed ($(tail -1 $O/join.txt))"
    fi
  fi
  kill $A $B 2>/dev/null; wait $A $B 2>/dev/null
}

[ -s $S/only ] || { two_nodes; ensure_bluetoothd "the two skein nodes"; }

# 1. The plugin on the real stack: discovery, connect figures, the
#    transport conformance suite (hci0 listens, hci1 dials).
#    Not LargeTransferBothWays (4 MiB each way): the guest emulates its
#    CPU and moves ~20-150 KB/s, so it would take minutes; the suite over
#    the sim driver runs it, and TestBlueZFigures moves 200 KB each way.
#    TestBlueZGATTFallback dials over the GATT byte stream (gatt_only),
#    as where L2CAP channels are refused; bounded to 2 min.
suite='^TestBlueZConformance$/^(Protocol|EchoBothWays|CloseGivesEOFAfterData|ManyConnections|AcceptHonoursContext|CloseUnblocksAccept|DialClosedListenerFails|ReadDeadline)$'
tests="TestBlueZDiscovery TestBlueZFigures TestBlueZConformance TestBlueZConformanceOutOfProcess TestBlueZGATTFallback"
[ -s $S/only ] && tests=$(cat $S/only)
for t in $tests; do
  run="^$t\$"
  [ $t = TestBlueZConformance ] && run=$suite
  [ $t = TestBlueZConformanceOutOfProcess ] && run=${suite/TestBlueZConformance/TestBlueZConformanceOutOfProcess}
  limit=300
  [ $t = TestBlueZGATTFallback ] && limit=120
  # A test that fails is run once more on a fresh daemon and controllers:
  # the first failure is kept in out/$t.first.log and reported as a NOTE
  # line, so a BlueZ state problem shows in CI's output without failing
  # it; a second failure fails it. (Not a fresh daemon before every test:
  # a run that did so lost the GATT fallback's advertisement twice.)
  for try in 1 2; do
    [ $try = 2 ] && fresh_bluetoothd
    SKEIN_BLE_ADAPTERS=hci0,hci1 timeout $limit /tmp/ble.test -test.run "$run" -test.v -test.timeout $((limit - 10))s > $O/$t.log 2>&1
    rc=$?
    ensure_bluetoothd $t
    [ $rc = 0 ] && break
    if [ $try = 1 ]; then
      mv $O/$t.log $O/$t.first.log
      result "NOTE $t failed on its first run (rc $rc, out/$t.first.log: $(grep -m1 -E '^ +[a-z_]+\.go:[0-9]+: ' $O/$t.first.log | sed 's/^ *//' | cut -c1-200)); run again on a fresh bluetoothd and controllers"
    fi
  done
  grep -h 'FIGURE' $O/$t.log | sed 's/^ *[a-z_]*\.go:[0-9]*: //' >> $O/figures.txt
  if [ $rc = 0 ]; then result "PASS $t"; else result "FAIL $t (rc $rc, out/$t.log)"; fi
done
touch $O/done

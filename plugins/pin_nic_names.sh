#!/bin/sh
# Run in the converted guest (guestfish's sh, after virt-v2v); reads `MAC ADDRESS` lines from pin-nic-names.pairs
# beside it (vmwave writes that file; nothing from vCenter is ever written into this script).
#
# A Linux guest's static address lives in a configuration that names its
# interface (ens192 on vSphere). KubeVirt's NIC gets another name (enp1s0), so
# that configuration would not apply and the guest would boot without its
# address. For each MAC, find the interface whose configuration holds the
# address and give the NIC with that MAC the old name back with a udev rule.
# Read: systemd-networkd, ifupdown, ifcfg (RHEL, SUSE), NetworkManager
# keyfiles, netplan. ROOT is empty in the guest (a test sets it to a tree).

RULES="$ROOT/etc/udev/rules.d/70-vmwave-net.rules"

networkd() {  # a .network file with Address=IP and one plain Name=
    for f in "$ROOT"/etc/systemd/network/*.network; do
        [ -f "$f" ] && grep -Eq "^[[:space:]]*Address[[:space:]]*=[[:space:]]*$1(/|[[:space:]]*$)" "$f" &&
            sed -n 's/^[[:space:]]*Name[[:space:]]*=[[:space:]]*\([^[:space:]*?]*\)[[:space:]]*$/\1/p' "$f" | head -n 1
    done
}

ifupdown() {  # iface NAME inet static, then address IP or IP/N
    for f in "$ROOT"/etc/network/interfaces "$ROOT"/etc/network/interfaces.d/*; do
        [ -f "$f" ] && awk -v ip="$2" '$1 == "iface" { name = $2 }
            $1 == "address" && ($2 == ip || index($2, ip "/") == 1) { print name; exit }' "$f"
    done
}

ifcfg() {  # IPADDR=IP in ifcfg-NAME (DEVICE= when it says otherwise)
    for f in "$ROOT"/etc/sysconfig/network-scripts/ifcfg-* "$ROOT"/etc/sysconfig/network/ifcfg-*; do
        [ -f "$f" ] && grep -Eq "^IPADDR[0-9_]*=[\"']?$1([\"'/]|$)" "$f" || continue
        name=$(sed -n "s/^DEVICE=[\"']\{0,1\}\([^\"']*\).*/\1/p" "$f" | head -n 1)
        echo "${name:-${f##*/ifcfg-}}"
    done
}

keyfile() {  # NetworkManager: addressN=IP/N with interface-name=NAME
    for f in "$ROOT"/etc/NetworkManager/system-connections/*; do
        [ -f "$f" ] && grep -Eq "^address[0-9]*=$1(/|,|$)" "$f" && sed -n 's/^interface-name=//p' "$f" | head -n 1
    done
}

netplan() {  # the interface key an address IP/N is listed under
    for f in "$ROOT"/etc/netplan/*.yaml; do
        [ -f "$f" ] && awk -v ip="$2" '
            /^[[:space:]]*[A-Za-z0-9_.-]+:[[:space:]]*$/ {
                key = $1; sub(":$", "", key)
                if (key !~ /^(network|ethernets|bonds|bridges|vlans|addresses|nameservers|routes|match)$/) name = key }
            index($0, " " ip "/") || index($0, "[" ip "/") || index($0, "\"" ip "/") { print name; exit }' "$f"
    done
}

mkdir -p "${RULES%/*}"
: > "$RULES.new"
while read -r mac ip; do
    pattern=$(printf '%s' "$ip" | sed 's/\./\\./g')
    name=$({ networkd "$pattern"; ifupdown "$pattern" "$ip"; ifcfg "$pattern"; keyfile "$pattern"; netplan "$pattern" "$ip"; } | head -n 1)
    if [ -z "$name" ]; then
        echo "vmwave: no network configuration in the guest holds $ip; the NIC $mac keeps the name it gets"
        continue
    fi
    echo "SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"$mac\", NAME=\"$name\"" >> "$RULES.new"
    echo "vmwave: the NIC $mac keeps the interface name $name, which holds $ip"
done < "${0%.sh}.pairs"
mv "$RULES.new" "$RULES"

"""Whether the vCenter user holds the privileges a wave's steps need, asked of vCenter's AuthorizationManager.

``HasUserPrivilegeOnEntities`` answers for the session's own user, counting every role it holds through its
groups and the permissions inherited down the inventory, as vCenter itself decides a call: one question for
all the wave's VMs, one for their datastores and one for their hosts.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim, vmodl

from vmwave.adapters.vsphere_ops import property_collector, service_content, vm_ref


def _names(si: vim.ServiceInstance, objects: list[Any], kind: type) -> dict[str, str]:
    pc = vmodl.query.PropertyCollector
    if not objects:
        return {}
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=o) for o in objects], propSet=[pc.PropertySpec(type=kind, pathSet=["name"])]
    )
    return {o.obj._moId: o.propSet[0].val for o in property_collector(si).RetrieveContents([spec]) if o.propSet}


def placement(si: vim.ServiceInstance, morefs: list[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Each VM's datastores and ESXi host, as references: where its disks are read from."""
    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=vm_ref(si, m)) for m in morefs],
        propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=["datastore", "runtime.host"])],
    )
    datastores, hosts = {}, {}
    for found in property_collector(si).RetrieveContents([spec]):
        props = {p.name: p.val for p in found.propSet}
        datastores[found.obj._moId] = list(props.get("datastore") or [])
        if props.get("runtime.host") is not None:
            hosts[found.obj._moId] = props["runtime.host"]
    return datastores, hosts


def lacking(si: vim.ServiceInstance, wanted: list[tuple[Any, set[str]]]) -> list[tuple[Any, list[str]]]:
    """For each (entity, privileges) the privileges the session's user does not hold there."""
    if not wanted:
        return []
    content = service_content(si)
    user = content.sessionManager.currentSession.userName
    privileges = sorted({p for _, wants in wanted for p in wants})
    entities = list({e._moId: e for e, _ in wanted}.values())
    answers = content.authorizationManager.HasUserPrivilegeOnEntities(
        entities=entities, userName=user, privId=privileges
    )
    granted = {a.entity._moId: {p.privId for p in a.privAvailability if p.isGranted} for a in answers}
    return [
        (entity, sorted(wants - granted.get(entity._moId, set())))
        for entity, wants in wanted
        if wants - granted.get(entity._moId, set())
    ]


def missing_privileges(
    si: vim.ServiceInstance, vms: dict[str, set[str]], on_datastores: set[str], on_hosts: set[str]
) -> list[tuple[str, str, str, list[str]]]:
    """(VM moref, entity kind, entity name, privileges lacking) for the VMs ``vms`` (moref -> privileges) and
    their datastores and hosts; the VM's moref says whose datastore or host it is."""
    datastores, hosts = placement(si, list(vms))
    wanted: list[tuple[Any, set[str]]] = [(vm_ref(si, m), p) for m, p in vms.items()]
    wanted += [(ds, set(on_datastores)) for ds in {d._moId: d for ds in datastores.values() for d in ds}.values()]
    wanted += [(host, set(on_hosts)) for host in {h._moId: h for h in hosts.values()}.values()]
    short = {e._moId: privs for e, privs in lacking(si, wanted)}
    if not short:
        return []
    names = {
        **_names(si, [vm_ref(si, m) for m in vms], vim.VirtualMachine),
        **_names(si, [d for ds in datastores.values() for d in ds], vim.Datastore),
        **_names(si, list(hosts.values()), vim.HostSystem),
    }
    found = []
    for moref in vms:
        if moref in short:
            found.append((moref, "VM", names.get(moref, moref), short[moref]))
        for ds in datastores.get(moref, []):
            if ds._moId in short:
                found.append((moref, "datastore", names.get(ds._moId, ds._moId), short[ds._moId]))
        host = hosts.get(moref)
        if host is not None and host._moId in short:
            found.append((moref, "host", names.get(host._moId, host._moId), short[host._moId]))
    return found

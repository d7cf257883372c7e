// The inode table's part of a hand-over (HandoverState.swift): export every node the
// kernel can still name, and rebuild the table from that in the next process.
import CurvineClient

extension InodeTable {
    /// Nodes (with names, aliases, lookup counts and deferred deletes) and the synthetic
    /// ino mapping. Called with the session paused, so nothing changes underneath.
    func exportForHandover() -> (nodes: [CoreHandoverState.NodeState], synthetic: [CoreHandoverState.SyntheticIno],
                                 nextSynthetic: UInt64) {
        lock.withLock {
            let ns = nodes.values.map { n in
                CoreHandoverState.NodeState(ino: n.ino, id: n.id, parent: n.parent, name: n.name,
                                            aliases: n.aliases.map { .init(parent: $0.parent, name: $0.name) },
                                            lookups: n.lookups, deferredDelete: n.open?.deferredDelete ?? false)
            }
            let syn = syntheticInos.map { CoreHandoverState.SyntheticIno(id: $0.key, ino: $0.value) }
            return (ns, syn, nextSynthetic)
        }
    }

    /// Rebuilds the table of a fresh core from an exported one. Statuses and dentries
    /// start expired (the next access revalidates them with the master); the parent links
    /// and child counts are recomputed from the names, as rememberLocked keeps them.
    /// Returns the inodes that were unlinked while open (deferred deletes).
    func importForHandover(nodes saved: [CoreHandoverState.NodeState], synthetic: [CoreHandoverState.SyntheticIno],
                           nextSynthetic next: UInt64) -> [UInt64] {
        lock.withLock {
            for s in synthetic { syntheticInos[s.id] = s.ino }
            nextSynthetic = max(nextSynthetic, next)
            var deferred: [UInt64] = []
            for s in saved where s.ino != Self.rootIno {
                let n = Node(ino: s.ino, id: s.id, parent: s.parent, name: s.name)
                n.aliases = s.aliases.map { ($0.parent, $0.name) }
                n.lookups = s.lookups
                nodes[s.ino] = n
                if s.deferredDelete { deferred.append(s.ino) }
            }
            for s in saved where s.ino != Self.rootIno {
                for (parent, name) in [(s.parent, s.name)] + s.aliases.map({ ($0.parent, $0.name) }) {
                    guard let p = nodes[parent] else { continue }
                    p.childRefs += 1
                    p.children[NameKey(name)] = ChildRef(ino: s.ino, expiresNs: 0)
                }
            }
            return deferred
        }
    }
}

// The Curvine cluster TOML of CONTRACT §3, key by key, in the contract's order.

struct FluidClusterTOML {
    var endpoints: [FluidMasterEndpoint]
    var masterWebPort: Int
    var ioThreads: Int
    var workerThreads: Int
    var targetPath: String
    var fsPath: String
    /// Sorted `client.<k>` pass-through keys.
    var client: [(key: String, value: FluidTOMLValue)]
    /// Sorted `fuse.<k>` pass-through keys.
    var fuse: [(key: String, value: FluidTOMLValue)]

    var document: FluidTOMLDocument {
        // A client never formats storage and never runs in testing mode: fixed like upstream.
        let root: [(key: String, value: FluidTOMLValue)] = [
            ("format_master", .bool(false)),
            ("format_worker", .bool(false)),
            ("testing", .bool(false)),
            ("cluster_id", .string(FluidDefaults.clusterID)),
        ]
        let first = endpoints[0]
        var sections = [FluidTOMLSection(.table, ["master"], [
            ("hostname", .string(first.host)),
            ("rpc_port", .integer(Int64(first.port))),
            ("web_port", .integer(Int64(masterWebPort))),
        ])]
        // `[client]` only when the Dataset adds keys; upstream's empty table means nothing.
        if !client.isEmpty { sections.append(FluidTOMLSection(.table, ["client"], client)) }
        for endpoint in endpoints {
            sections.append(FluidTOMLSection(.arrayOfTables, ["client", "master_addrs"], [
                ("hostname", .string(endpoint.host)),
                ("port", .integer(Int64(endpoint.port))),
            ]))
        }
        sections.append(FluidTOMLSection(.table, ["fuse"], [
            // Per-request logging would flood the pod log; `-d` on the CLI is the way to debug.
            ("debug", .bool(false)),
            ("io_threads", .integer(Int64(ioThreads))),
            ("worker_threads", .integer(Int64(workerThreads))),
            ("mnt_path", .string(targetPath)),
            ("fs_path", .string(fsPath)),
        ] + fuse))
        return FluidTOMLDocument(root: root, sections: sections)
    }
}

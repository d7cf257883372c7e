// curvine-cluster: runs an embedded Curvine master + workers in the foreground on
// 127.0.0.1 (EmbeddedCluster). A test peer and demo that speaks Curvine's wire
// protocol, not a Curvine replacement.
//
// Prints exactly one line to stdout once every listener is up:
//   ready master=127.0.0.1:P workers=127.0.0.1:Q[,127.0.0.1:Q2...]
// and exits 0 on SIGTERM or SIGINT after closing its listeners. Diagnostics go to stderr.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import CurvineClient
import CurvineServer

struct CurvineCluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curvine-cluster",
        abstract: "Run a small embedded Curvine master and worker(s) on 127.0.0.1.",
        discussion: """
            A test peer and demo, NOT a Curvine replacement: it speaks Curvine's client wire \
            protocol (master RPCs and worker block streams) so the FUSE client can be tested \
            and demonstrated without a real cluster. There is no raft, no UFS, no replication \
            pipeline and no security; data lives in --data-dir and survives a restart.

            When every listener is up it prints one line to stdout:
              ready master=127.0.0.1:P workers=127.0.0.1:Q[,...]
            and runs until SIGTERM or SIGINT, then closes its listeners and exits 0.
            Use port 0 for an ephemeral port; with several workers and a non-zero \
            --worker-port, worker i listens on that port + i.
            """)

    @Option(name: .long, help: "Directory for the namespace journal and the block files (created if missing).")
    var dataDir: String

    @Option(name: .long, help: "Master RPC port (0 = ephemeral).")
    var masterPort: UInt16 = 8995

    @Option(name: .long, help: "First worker RPC port (0 = ephemeral; worker i uses this + i).")
    var workerPort: UInt16 = 8997

    @Option(name: .long, help: "Number of workers.")
    var workers: Int = 1

    @Option(name: .long, help: "Port of a standby master answering NotLeaderMaster (repeatable; 0 = ephemeral).")
    var standbyMasterPort: [UInt16] = []

    func validate() throws {
        // 64 workers is far beyond any test topology and keeps threads/ports bounded.
        guard workers >= 1 && workers <= 64 else {
            throw ValidationError("--workers must be between 1 and 64, got \(workers)")
        }
        if workerPort != 0 && Int(workerPort) + workers - 1 > 65535 {
            throw ValidationError("--worker-port \(workerPort) + \(workers) workers runs past port 65535")
        }
    }

    func run() throws {
        // Block the stop signals before any thread starts, so every thread inherits the
        // mask and sigwait below is the only place they are delivered.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        let ports = (0..<workers).map { workerPort == 0 ? UInt16(0) : UInt16(Int(workerPort) + $0) }
        let cluster: EmbeddedCluster
        do {
            cluster = try EmbeddedCluster.start(dataDir: dataDir, masterPort: masterPort, workers: workers,
                                                workerPorts: ports, standbyMasterPorts: standbyMasterPort)
        } catch {
            fputs("curvine-cluster: cannot start: \(error)\n", stderr)
            throw ExitCode(1)
        }
        let workerList = cluster.workerAddresses.map(\.description).joined(separator: ",")
        var line = "ready master=\(cluster.masterAddress) workers=\(workerList)"
        if cluster.masterAddresses.count > 1 {
            fputs("curvine-cluster: standby masters: \(cluster.masterAddresses.dropFirst().map(\.description).joined(separator: ","))\n", stderr)
        }
        line += "\n"
        fputs(line, stdout)
        fflush(stdout)

        var sig: Int32 = 0
        sigwait(&stopSignals, &sig)
        fputs("curvine-cluster: signal \(sig), stopping\n", stderr)
        cluster.stop()
    }
}

CurvineCluster.main()

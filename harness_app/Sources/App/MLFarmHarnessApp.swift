import Foundation
import HarnessKit
import Observation
import SwiftUI
#if os(iOS)
import UIKit
#endif

/// The harness app. The orchestrator installs it, pushes a job folder into Documents and launches it with
/// `--job <path of job.json inside Documents>`; the app runs the job off the main thread, writes result.json
/// next to job.json and exits, so the orchestrator sees the process vanish. Opened from the home screen
/// (no `--job`), it only says how it is meant to be used.
@main
struct MLFarmHarnessApp: App {
    @State private var run = HarnessRun()

    var body: some Scene {
        WindowGroup {
            VStack(spacing: 12) {
                Text("mlfarm harness").font(.headline)
                Text(run.message).font(.body.monospaced()).multilineTextAlignment(.center)
            }
            .padding()
            .task { await run.start() }
        }
    }
}

@MainActor @Observable
final class HarnessRun {
    private(set) var message = "waiting for a job"

    func start() async {
        let arguments = CommandLine.arguments
        guard let jobURL = Harness.jobURL(arguments: arguments, documents: URL.documentsDirectory) else {
            if arguments.contains("--job") {
                exit(2)  // a path outside Documents: nothing to run, and the orchestrator must not wait
            }
            message = "no job: launch with --job <path of job.json inside Documents>"
            return
        }
        message = "running \(jobURL.deletingLastPathComponent().lastPathComponent)"
        #if os(iOS)
        UIApplication.shared.isIdleTimerDisabled = true  // a locked screen would suspend the run
        #endif
        let result = await Task.detached(priority: .userInitiated) {
            await Harness.run(jobURL: jobURL, root: URL.documentsDirectory, onTimeout: { exit(0) })
        }.value
        message = "finished: \(result?.status.rawValue ?? "no result written")"
        exit(result == nil ? 1 : 0)
    }
}

import CoreML
import Foundation

/// The figures of one run as they accumulate.
///
/// The benchmark writes them as it measures; the timeout watchdog may read them from another thread, so every
/// access takes the lock. `finish()` hands the figures out once: whoever ends the run first (the benchmark or
/// the watchdog) writes result.json, the other gets nil and writes nothing.
final class Recorder: @unchecked Sendable {
    struct Figures {
        var baselineMB = 0.0
        var loadColdMS = 0.0
        var loadWarmMS = 0.0
        var firstPredictMS = 0.0
        var latenciesMS: [Double] = []
        var outputs: [String: String] = [:]
    }

    private let lock = NSLock()
    private var figures = Figures()
    private var finished = false

    func record(_ change: (inout Figures) -> Void) {
        lock.withLock { change(&figures) }
    }

    func finish() -> Figures? {
        lock.withLock {
            if finished { return nil }
            finished = true
            return figures
        }
    }
}

/// One job on Core ML: cold load, warm load, first prediction (outputs saved), warmup, timed iterations.
///
/// Create it, call `run()` once. Figures reach the recorder as soon as they are measured, so a run that times
/// out or fails half-way still reports what it measured.
struct Benchmark {
    let job: Job
    let jobDir: URL  // job.json's folder: result.json and the outputs go here
    let root: URL  // what job.model is relative to (Documents on a device)
    let recorder: Recorder
    let probe: MemoryProbe
    let clock: Stopwatch

    func run() async throws {
        let features = try SeededInputs.features(for: job.inputs)
        let baselineMB = MemoryProbe.currentMB()  // inputs exist, no model yet: the app's own share
        recorder.record { $0.baselineMB = baselineMB }

        let source = try modelURL()
        let configuration = MLModelConfiguration()
        configuration.computeUnits = job.computeUnits.coreML

        // Cold: compile the package, then load it with the job's compute units. The model is dropped at once,
        // so the warm load starts from the same memory.
        let cold = Stopwatch()
        let compiled: URL
        if source.pathExtension == "mlmodelc" {
            compiled = source
        } else {
            compiled = try await MLModel.compileModel(at: source)
        }
        defer { if compiled != source { try? FileManager.default.removeItem(at: compiled) } }
        _ = try await MLModel.load(contentsOf: compiled, configuration: configuration)
        let coldMS = cold.elapsedMS
        recorder.record { $0.loadColdMS = coldMS }
        probe.sample()
        try checkDeadline()

        // Warm: the same compiled model again; the OS keeps device-specific compiles (Neural Engine) cached.
        let warm = Stopwatch()
        let model = try await MLModel.load(contentsOf: compiled, configuration: configuration)
        let warmMS = warm.elapsedMS
        recorder.record { $0.loadWarmMS = warmMS }
        probe.sample()
        try checkDeadline()

        try firstPrediction(model, features)
        for _ in 0..<job.warmup {
            try checkDeadline()
            try autoreleasepool { _ = try model.prediction(from: features) }
        }
        for _ in 0..<job.iterations {
            try checkDeadline()
            // A pool per prediction: outputs are autoreleased, and without it they pile up until the loop ends,
            // inflating the footprint being measured.
            let latencyMS = try autoreleasepool { () throws -> Double in
                let iteration = Stopwatch()
                _ = try model.prediction(from: features)
                return iteration.elapsedMS
            }
            recorder.record { $0.latenciesMS.append(latencyMS) }
        }
    }

    private func firstPrediction(_ model: MLModel, _ features: MLFeatureProvider) throws {
        try autoreleasepool {
            let first = Stopwatch()
            let output = try model.prediction(from: features)
            let firstMS = first.elapsedMS
            recorder.record { $0.firstPredictMS = firstMS }
            probe.sample()
            if job.returnOutputs {
                let files = try writeOutputs(output)
                recorder.record { $0.outputs = files }
            }
        }
        try checkDeadline()
    }

    /// Saves each multiarray output as `out_<name>.npy`; other feature types (images) are not compared.
    private func writeOutputs(_ output: MLFeatureProvider) throws -> [String: String] {
        var files: [String: String] = [:]
        for name in output.featureNames.sorted() {
            // The contract's output-name pattern, shortened so "out_<name>.npy" stays within 128 characters.
            guard name.range(of: "^[A-Za-z_][A-Za-z0-9_]{0,119}$", options: .regularExpression) != nil,
                  let array = output.featureValue(for: name)?.multiArrayValue else { continue }
            let file = "out_\(name).npy"
            try NPYWriter.write(array, to: jobDir.appendingPathComponent(file))
            files[name] = file
        }
        return files
    }

    private func modelURL() throws -> URL {
        let url = root.appendingPathComponent(job.model)
        guard FileManager.default.fileExists(atPath: url.path) else { throw HarnessError.modelMissing(job.model) }
        return url
    }

    private func checkDeadline() throws {
        if clock.elapsedMS > job.timeoutS * 1000 { throw HarnessError.timedOut(job.timeoutS) }
    }
}

extension ComputeUnits {
    var coreML: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuAndNE: return .cpuAndNeuralEngine
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuOnly: return .cpuOnly
        }
    }
}

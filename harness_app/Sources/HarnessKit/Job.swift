import Foundation

/// One benchmark request, decoded from `job.json` (contract: `harness_app/contract/job.schema.json`).
///
/// The orchestrator validates the full schema before it sends a job; `validate()` re-checks what would make
/// this app misbehave (another schema version, a model path that leaves the job folder, empty shapes).
public struct Job: Codable, Equatable, Sendable {
    public static let schemaVersion = 1

    public let schemaVersion: Int
    public let jobID: String
    /// The `.mlpackage` or `.mlmodelc`, relative to the folder holding job.json.
    public let model: String
    public let computeUnits: ComputeUnits
    public let inputs: [JobInput]
    public let warmup: Int
    public let iterations: Int
    public let sampleIntervalMS: Int
    public let timeoutS: Double
    public let returnOutputs: Bool

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case jobID = "job_id"
        case model
        case computeUnits = "compute_units"
        case inputs
        case warmup
        case iterations
        case sampleIntervalMS = "sample_interval_ms"
        case timeoutS = "timeout_s"
        case returnOutputs = "return_outputs"
    }

    public static func load(from url: URL) throws -> Job {
        let job = try JSONDecoder().decode(Job.self, from: Data(contentsOf: url))
        try job.validate()
        return job
    }

    public func validate() throws {
        guard schemaVersion == Job.schemaVersion else {
            throw HarnessError.invalidJob("schema_version \(schemaVersion); this harness speaks \(Job.schemaVersion)")
        }
        guard !model.isEmpty, !model.hasPrefix("/"),
              !model.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw HarnessError.invalidJob("model path \(model) leaves the job folder")
        }
        guard !inputs.isEmpty, inputs.allSatisfy({ !$0.shape.isEmpty && $0.shape.allSatisfy { $0 > 0 } }) else {
            throw HarnessError.invalidJob("every input needs a non-empty shape of positive sizes")
        }
        guard iterations > 0, warmup >= 0, sampleIntervalMS > 0, timeoutS > 0 else {
            throw HarnessError.invalidJob("iterations, sample_interval_ms and timeout_s must be positive")
        }
    }
}

/// One model input, filled with seeded values (see `SeededInputs`).
public struct JobInput: Codable, Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let dtype: DType
    public let seed: UInt64
    /// int32 inputs are drawn from [0, high); absent means `SeededInputs.defaultIntHigh`.
    public let high: UInt64?

    enum CodingKeys: String, CodingKey {
        case name
        case shape
        case dtype
        case seed
        case high
    }
}

public enum ComputeUnits: String, Codable, Sendable {
    case all
    case cpuAndNE = "cpu_and_ne"
    case cpuAndGPU = "cpu_and_gpu"
    case cpuOnly = "cpu_only"
}

public enum DType: String, Codable, Sendable {
    case float32
    case float16
    case int32
}

public enum HarnessError: Error, CustomStringConvertible {
    case invalidJob(String)
    case modelMissing(String)
    case unsupportedOutput(String)
    case timedOut(Double)

    public var description: String {
        switch self {
        case .invalidJob(let why): return "invalid job: \(why)"
        case .modelMissing(let path): return "model not found in the job folder: \(path)"
        case .unsupportedOutput(let what): return "cannot write an output as .npy: \(what)"
        case .timedOut(let seconds): return "timed out after \(seconds) s"
        }
    }
}

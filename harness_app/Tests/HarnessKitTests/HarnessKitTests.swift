import CoreML
import XCTest
@testable import HarnessKit

// The literals below are shared with Python: tests/harness/test_swift_contract.py checks that the golden
// values equal orchestrator/harness/inputs.py and numpy, and that the sample documents validate against
// harness_app/contract/*.schema.json. Edit both sides together.

/// `GOLDEN` in orchestrator/harness/inputs.py: seed -> first SplitMix64 outputs.
let splitMixGolden: [UInt64: [UInt64]] = [
    1234567: [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
              16408922859458223821],
    0: [0xE220_A839_7B1D_CDAF],
]

/// `make_input([n], dtype, seed, high)` in Python; floats as bit patterns, so equality is exact.
struct GoldenInput {
    let dtype: DType
    let seed: UInt64
    let high: UInt64?
    let values: [UInt64]
}

let goldenInputs = [
    GoldenInput(dtype: .float32, seed: 0, high: nil,
                values: [0xBEE7CFDD, 0x3E54C09F, 0x4029A387, 0xBEFB18B3, 0xBF7D1529, 0x3FEFA105]),
    GoldenInput(dtype: .float16, seed: 1, high: nil, values: [0xA73B, 0xBC43, 0xB34B, 0x2D51]),
    GoldenInput(dtype: .int32, seed: 7, high: 10, values: [7, 4, 6, 3, 4, 5]),
    GoldenInput(dtype: .int32, seed: 3, high: nil, values: [53, 561, 729]),
]

/// What `np.save` writes as the header dict (before its padding) for these dtypes and shapes.
let npyHeaderGolden: [(descr: String, shape: [Int], dict: String)] = [
    ("<f4", [2, 3], "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"),
    ("<f2", [5], "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }"),
    ("<i4", [1, 4, 64, 64], "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 4, 64, 64), }"),
]

let sampleJob = """
{
  "schema_version": 1,
  "job_id": "run-7/unet/fp16-palette6-split_einsum_v2/cpu_and_ne",
  "model": "model.mlpackage",
  "compute_units": "cpu_and_ne",
  "inputs": [
    {"name": "sample", "shape": [2, 4, 64, 64], "dtype": "float16", "seed": 0},
    {"name": "timestep", "shape": [2], "dtype": "int32", "seed": 1, "high": 1000}
  ],
  "warmup": 2,
  "iterations": 10,
  "sample_interval_ms": 20,
  "timeout_s": 600,
  "return_outputs": true
}
"""

let sampleResult = """
{
  "schema_version": 1,
  "job_id": "run-7/unet/fp16-palette6-split_einsum_v2/cpu_and_ne",
  "status": "ok",
  "harness": {"name": "MLFarmHarness", "version": "1.0.0", "runtime": "coreml"},
  "device": {"model": "iPhone13,2", "os": "iOS 17.4.1", "physical_memory_mb": 3718.5,
             "thermal_state_before": "nominal", "thermal_state_after": "fair", "low_power_mode": false},
  "load_ms": {"cold": 5321.25, "warm": 812.5},
  "first_predict_ms": 1432.75,
  "latencies_ms": [1201.5, 1199.25, 1204],
  "memory": {"peak_phys_footprint_mb": 1650.5, "baseline_phys_footprint_mb": 41.25, "min_available_mb": 402.75,
             "samples": [[0, 41.25], [20.5, 380], [40.75, 1650.5]]},
  "outputs": {"noise_pred": "out_noise_pred.npy"},
  "error": null
}
"""

final class HarnessKitTests: XCTestCase {
    func testSplitMix64MatchesPythonGolden() {
        for (seed, expected) in splitMixGolden {
            var rng = SplitMix64(seed: seed)
            XCTAssertEqual(expected.map { _ in rng.next() }, expected, "seed \(seed)")
        }
    }

    func testSeededInputsMatchPythonBitForBit() {
        for golden in goldenInputs {
            let input = JobInput(name: "x", shape: [golden.values.count], dtype: golden.dtype, seed: golden.seed,
                                 high: golden.high)
            let array = SeededInputs.multiArray(for: input)
            let got: [UInt64]
            switch golden.dtype {
            case .float32: got = MLShapedArray<Float>(array).scalars.map { UInt64($0.bitPattern) }
            case .float16: got = MLShapedArray<Float16>(array).scalars.map { UInt64($0.bitPattern) }
            case .int32: got = MLShapedArray<Int32>(array).scalars.map { UInt64($0) }
            }
            XCTAssertEqual(got, golden.values, "\(golden.dtype) seed \(golden.seed)")
        }
    }

    func testNPYHeaderMatchesNumPy() {
        for golden in npyHeaderGolden {
            let header = NPYWriter.header(descr: golden.descr, shape: golden.shape)
            XCTAssertEqual(Array(header.prefix(8)), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
            XCTAssertEqual(header.count % 64, 0, "data must start 64-byte aligned")
            XCTAssertEqual(Int(header[8]) | Int(header[9]) << 8, header.count - 10)
            let text = String(decoding: header.dropFirst(10), as: UTF8.self)
            XCTAssertTrue(text.hasSuffix("\n"))
            XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), golden.dict)
        }
    }

    func testNPYDataIsDenseCOrder() throws {
        let array = MLMultiArray(MLShapedArray<Float>(scalars: [1, 2, 3, 4, 5, 6], shape: [2, 3]))
        let data = try NPYWriter.data(for: array)
        let header = NPYWriter.header(descr: "<f4", shape: [2, 3])
        XCTAssertEqual(data.prefix(header.count), header)
        let body = data.dropFirst(header.count)
        XCTAssertEqual(body.count, 6 * 4)
        let values = body.withUnsafeBytes { raw in
            (0..<6).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        }
        XCTAssertEqual(values, [1, 2, 3, 4, 5, 6])
    }

    func testSampleJobDecodes() throws {
        let job = try JSONDecoder().decode(Job.self, from: Data(sampleJob.utf8))
        XCTAssertNoThrow(try job.validate())
        XCTAssertEqual(job.computeUnits, .cpuAndNE)
        XCTAssertEqual(job.inputs.map(\.dtype), [.float16, .int32])
        XCTAssertEqual(job.inputs[0].shape, [2, 4, 64, 64])
        XCTAssertNil(job.inputs[0].high)
        XCTAssertEqual(job.inputs[1].high, 1000)
        XCTAssertEqual(job.sampleIntervalMS, 20)
        XCTAssertEqual(job.timeoutS, 600)
        XCTAssertTrue(job.returnOutputs)
    }

    func testJobWithEscapingModelPathIsRejected() throws {
        let escaping = sampleJob.replacingOccurrences(of: "\"model.mlpackage\"", with: "\"../other.mlpackage\"")
        let job = try JSONDecoder().decode(Job.self, from: Data(escaping.utf8))
        XCTAssertThrowsError(try job.validate())
    }

    func testSampleResultRoundTrips() throws {
        let result = try JSONDecoder().decode(HarnessResult.self, from: Data(sampleResult.utf8))
        XCTAssertEqual(result.memory.minAvailableMB, 402.75)
        let encoded = try JSONEncoder().encode(result)
        XCTAssertEqual(try JSONDecoder().decode(HarnessResult.self, from: encoded), result)
        let original = try JSONSerialization.jsonObject(with: Data(sampleResult.utf8)) as? NSDictionary
        XCTAssertEqual(try JSONSerialization.jsonObject(with: encoded) as? NSDictionary, original)
    }

    func testNilFieldsAreWrittenAsNull() throws {
        let memory = MemoryReport(peakPhysFootprintMB: 10, baselinePhysFootprintMB: 5, minAvailableMB: nil,
                                  samples: [])
        let result = HarnessResult(jobID: "j", status: .error, error: nil, figures: Recorder.Figures(),
                                   memory: memory, device: .current(thermalBefore: .nominal))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as? [String: Any])
        XCTAssertTrue(object["error"] is NSNull, "the schema requires the key, with null")
        let written = try XCTUnwrap(object["memory"] as? [String: Any])
        XCTAssertTrue(written["min_available_mb"] is NSNull)
    }

    func testMissingModelWritesAnErrorResult() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let jobURL = folder.appendingPathComponent("job.json")
        try Data(sampleJob.utf8).write(to: jobURL)

        let returned = await Harness.run(jobURL: jobURL)
        let written = try JSONDecoder().decode(HarnessResult.self,
                                               from: Data(contentsOf: folder.appendingPathComponent("result.json")))
        XCTAssertEqual(returned?.jobID, written.jobID)
        XCTAssertEqual(written.status, .error)
        XCTAssertTrue(written.error?.contains("model.mlpackage") ?? false)
        XCTAssertGreaterThan(written.memory.peakPhysFootprintMB, 0)
    }

    func testFootprintSeesTouchedMemory() throws {
        let before = MemoryProbe.currentMB()
        let size = 64 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { block.deallocate() }
        memset(block, 1, size)  // touched pages count toward phys_footprint, untouched ones do not
        XCTAssertGreaterThan(MemoryProbe.currentMB() - before, 60)
        let footprint = try XCTUnwrap(MemoryProbe.footprint())
        XCTAssertGreaterThanOrEqual(footprint.peak, footprint.current)
    }

    func testJobArgumentStaysInsideDocuments() {
        let documents = URL(fileURLWithPath: "/var/mobile/Documents")
        XCTAssertEqual(Harness.jobURL(arguments: ["app", "--job", "jobs/a/job.json"], documents: documents)?.path,
                       "/var/mobile/Documents/jobs/a/job.json")
        XCTAssertNil(Harness.jobURL(arguments: ["app", "--job", "../x/job.json"], documents: documents))
        XCTAssertNil(Harness.jobURL(arguments: ["app", "--job", "/etc/job.json"], documents: documents))
        XCTAssertNil(Harness.jobURL(arguments: ["app"], documents: documents))
    }
}

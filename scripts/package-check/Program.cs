// The package check's consumer (scripts/package-check.sh runs it from a temporary folder outside the repository).
//   PackageCheck contents FEED DIRECTORY_PACKAGES_PROPS   what the packages in FEED hold, read as zip files
//   PackageCheck attention [SEED]                           forward and backward on the CPU accelerator through the
//                                                           package's public API, against float64 computed here
// Exit status 0 when every check holds, 1 otherwise; each failure is printed.
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using SparseAttention.Accelerators;
using SparseAttention.Attention;
using SparseAttention.Autograd;
using SparseAttention.Layouts;
using SparseAttention.Tensors;

return args switch
{
    ["contents", var feed, var packagesProps] => Report(PackageContents.Check(feed, packagesProps)),
    ["attention"] => Report(AttentionCheck.Run(Random.Shared.Next())),
    ["attention", var seed] => Report(AttentionCheck.Run(int.Parse(seed, System.Globalization.CultureInfo.InvariantCulture))),
    _ => Usage(),
};

static int Report(List<string> failures)
{
    foreach (var failure in failures)
    {
        Console.WriteLine($"  FAILED: {failure}");
    }

    return failures.Count == 0 ? 0 : 1;
}

static int Usage()
{
    Console.Error.WriteLine("usage: PackageCheck contents FEED DIRECTORY_PACKAGES_PROPS | PackageCheck attention [SEED]");
    return 2;
}

/// <summary>The library package, its symbols and the tool package, as NuGet users get them.</summary>
internal static class PackageContents
{
    private static readonly Guid EmbeddedSource = new("0E8A571B-6926-466E-B4AD-8AB04611F5FE");
    private static readonly string[] Assemblies = ["SparseAttention.Core", "SparseAttention.Kernels"];
    private static readonly string[] Dependencies = ["ILGPU", "ILGPU.Algorithms", "System.Numerics.Tensors"];

    public static List<string> Check(string feed, string packagesProps)
    {
        var failures = new List<string>();
        void Expect(bool condition, string failure)
        {
            if (!condition)
            {
                failures.Add(failure);
            }
        }

        var files = Directory.GetFiles(feed).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Console.WriteLine($"  feed: {string.Join(", ", files)}");
        var library = files.SingleOrDefault(f => Regex.IsMatch(f!, @"^SparseAttention\.\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?\.nupkg$"));
        if (library is null)
        {
            return [$"no single SparseAttention.VERSION.nupkg in {feed}"];
        }

        var version = library["SparseAttention.".Length..^".nupkg".Length];
        string[] expected = [$"SparseAttention.{version}.nupkg", $"SparseAttention.{version}.snupkg", $"SparseAttention.Cli.{version}.nupkg", $"SparseAttention.Cli.{version}.snupkg"];
        Expect(files.SequenceEqual(expected), $"the feed holds [{string.Join(", ", files)}], expected exactly [{string.Join(", ", expected)}]");
        Expect(Regex.IsMatch(version, @"^0\.\d+\.\d+$"), $"version {version} is not 0.MINOR.PATCH (the API still moves)");

        // The library: both assemblies with their XML docs, the README, metadata, the pinned dependencies and no others.
        using (var package = ZipFile.OpenRead(Path.Combine(feed, library)))
        {
            var entries = package.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
            foreach (var assembly in Assemblies)
            {
                Expect(entries.Contains($"lib/net10.0/{assembly}.dll"), $"{library} lacks lib/net10.0/{assembly}.dll");
                Expect(entries.Contains($"lib/net10.0/{assembly}.xml"), $"{library} lacks lib/net10.0/{assembly}.xml (XML docs)");
            }

            Expect(entries.Contains("README.md"), $"{library} lacks README.md");
            Expect(entries.Contains("LICENSE"), $"{library} lacks LICENSE");
            var stray = entries.Where(e => e.StartsWith("lib/", StringComparison.Ordinal) && !Assemblies.Any(a => e.StartsWith($"lib/net10.0/{a}.", StringComparison.Ordinal))).ToList();
            Expect(stray.Count == 0, $"{library} has unexpected files in lib/: {string.Join(", ", stray)}");

            var nuspec = Nuspec(package, "SparseAttention.nuspec");
            string? Meta(string name) => nuspec.Element(nuspec.Name.Namespace + name)?.Value;
            var ns = nuspec.Name.Namespace;
            Expect(Meta("id") == "SparseAttention", $"package id is '{Meta("id")}'");
            Expect(Meta("description") is { Length: > 40 } d && d != "Package Description", "the description is missing or the SDK's default");
            Expect(!string.IsNullOrWhiteSpace(Meta("tags")), "no tags");
            Expect(Meta("readme") == "README.md", "the readme is not README.md");
            var license = nuspec.Element(ns + "license");
            Expect(license?.Attribute("type")?.Value == "expression" && license.Value == "MIT", "the license is not the expression MIT");
            var url = nuspec.Element(ns + "repository")?.Attribute("url")?.Value;
            Expect(url is null || url.StartsWith("https://", StringComparison.Ordinal), $"repository url '{url}' is not a web address");
            Console.WriteLine($"  {library}: version {version}, repository url {url ?? "(none: no https remote 'origin')"}");

            var pinned = XDocument.Load(packagesProps).Descendants("PackageVersion")
                .ToDictionary(p => (string)p.Attribute("Include")!, p => (string)p.Attribute("Version")!);
            var dependencies = nuspec.Descendants(ns + "dependency")
                .ToDictionary(d => (string)d.Attribute("id")!, d => (string)d.Attribute("version")!);
            Expect(dependencies.Keys.Order(StringComparer.Ordinal).SequenceEqual(Dependencies), $"dependencies are [{string.Join(", ", dependencies.Keys)}], expected [{string.Join(", ", Dependencies)}]");
            foreach (var (id, depVersion) in dependencies)
            {
                Expect(pinned.GetValueOrDefault(id) == depVersion, $"dependency {id} {depVersion} is not the pinned {pinned.GetValueOrDefault(id)}");
            }
        }

        // The symbols: both pdbs, every source file embedded in them.
        using (var symbols = ZipFile.OpenRead(Path.Combine(feed, $"SparseAttention.{version}.snupkg")))
        {
            foreach (var assembly in Assemblies)
            {
                var entry = symbols.GetEntry($"lib/net10.0/{assembly}.pdb");
                if (entry is null)
                {
                    failures.Add($"the symbols package lacks lib/net10.0/{assembly}.pdb");
                    continue;
                }

                using var pdb = new MemoryStream();
                using (var stream = entry.Open())
                {
                    stream.CopyTo(pdb);
                }

                pdb.Position = 0;
                using var provider = MetadataReaderProvider.FromPortablePdbStream(pdb);
                var reader = provider.GetMetadataReader();
                var embedded = reader.Documents.Count(d => reader.GetCustomDebugInformation(d).Any(c => reader.GetGuid(reader.GetCustomDebugInformation(c).Kind) == EmbeddedSource));
                Console.WriteLine($"  {assembly}.pdb: {reader.Documents.Count} source files, {embedded} embedded");
                Expect(reader.Documents.Count > 0 && embedded == reader.Documents.Count, $"{assembly}.pdb embeds {embedded} of its {reader.Documents.Count} source files");
            }
        }

        // The tool: a DotnetTool package whose command is sparse-attention.
        using (var tool = ZipFile.OpenRead(Path.Combine(feed, $"SparseAttention.Cli.{version}.nupkg")))
        {
            var nuspec = Nuspec(tool, "SparseAttention.Cli.nuspec");
            Expect(nuspec.Descendants(nuspec.Name.Namespace + "packageType").Any(t => (string?)t.Attribute("name") == "DotnetTool"), "SparseAttention.Cli is not a DotnetTool package");
            var settings = tool.Entries.SingleOrDefault(e => e.Name == "DotnetToolSettings.xml");
            using var settingsStream = settings?.Open();
            var command = settingsStream is null ? null : XDocument.Load(settingsStream).Descendants("Command").FirstOrDefault()?.Attribute("Name")?.Value;
            Expect(command == "sparse-attention", $"the tool's command is '{command}', expected sparse-attention");
        }

        return failures;
    }

    private static XElement Nuspec(ZipArchive package, string name)
    {
        using var stream = package.GetEntry(name)?.Open() ?? throw new InvalidDataException($"no {name} in the package");
        return XDocument.Load(stream).Root!.Elements().First(e => e.Name.LocalName == "metadata");
    }
}

/// <summary>Block-sparse attention forward and backward through the public API, against float64 written out here.</summary>
internal static class AttentionCheck
{
    private const int Batch = 1, Ctx = 64, Heads = 2, HeadDim = 16, BlockSize = 16, Window = 32;
    private const double Tolerance = 1e-5; // fp32, docs/numerics.md §2

    public static List<string> Run(int seed)
    {
        Console.WriteLine($"  seed {seed} (rerun: PackageCheck attention {seed}); batch {Batch}, ctx {Ctx}, heads {Heads}, head dim {HeadDim}, block {BlockSize}, local({Window})");
        var random = new Random(seed);
        var length = Batch * Ctx * Heads * HeadDim;
        float[] Randn() => Enumerable.Range(0, length).Select(_ => (float)random.NextDouble() * 2 - 1).ToArray();
        float[] q = Randn(), k = Randn(), v = Randn(), dOut = Randn();

        using var device = ComputeDevice.CreateCpu();
        using var qt = DeviceTensor<float>.FromSpan(device, q, Batch, Ctx, Heads * HeadDim);
        using var kt = DeviceTensor<float>.FromSpan(device, k, Batch, Ctx, Heads * HeadDim);
        using var vt = DeviceTensor<float>.FromSpan(device, v, Batch, Ctx, Heads * HeadDim);
        using var dOutT = DeviceTensor<float>.FromSpan(device, dOut, Batch, Ctx, Heads * HeadDim);
        using var tape = new Tape();
        using var output = BlockSparseAttention.Compute(qt, kt, vt, Heads, AttentionPattern.Local(Window), BlockSize, tape: tape);
        using var grads = tape.Backward(output, dOutT);

        var (refOut, refDq, refDk, refDv) = Reference(q, k, v, dOut);
        var failures = new List<string>();
        foreach (var (name, actual, expected) in new[]
        {
            ("output", output.ToArray(), refOut), ("dq", grads.Of(qt).ToArray(), refDq),
            ("dk", grads.Of(kt).ToArray(), refDk), ("dv", grads.Of(vt).ToArray(), refDv),
        })
        {
            var error = RelativeError(actual, expected);
            Console.WriteLine($"  {name}: relative error {error:E2} (at most {Tolerance:E0})");
            if (!(error <= Tolerance))
            {
                failures.Add($"{name} differs from float64: relative error {error:E2} > {Tolerance:E0} (seed {seed})");
            }
        }

        return failures;
    }

    /// <summary>Masked softmax attention and its gradients in float64 (docs/semantics.md §2, local: k &lt;= q and q - k &lt; L).</summary>
    private static (double[] Out, double[] Dq, double[] Dk, double[] Dv) Reference(float[] q, float[] k, float[] v, float[] dOut)
    {
        var length = q.Length;
        double[] o = new double[length], dq = new double[length], dk = new double[length], dv = new double[length];
        var scale = 1 / Math.Sqrt(HeadDim);
        int At(int n, int t, int h, int d) => ((n * Ctx + t) * Heads + h) * HeadDim + d;
        for (var n = 0; n < Batch; n++)
        {
            for (var h = 0; h < Heads; h++)
            {
                for (var i = 0; i < Ctx; i++)
                {
                    var allowed = Enumerable.Range(0, Ctx).Where(j => j <= i && i - j < Window).ToArray();
                    var p = allowed.Select(j => scale * Enumerable.Range(0, HeadDim).Sum(d => (double)q[At(n, i, h, d)] * k[At(n, j, h, d)])).ToArray();
                    var max = p.Max();
                    var sum = p.Sum(s => Math.Exp(s - max));
                    p = p.Select(s => Math.Exp(s - max) / sum).ToArray();

                    // dP = dO · v, dS = P ∘ (dP - rowsum(P ∘ dP)), dq = scale dS · k, dk += scale dSᵀ · q, dv += Pᵀ · dO.
                    var dp = allowed.Select(j => Enumerable.Range(0, HeadDim).Sum(d => (double)dOut[At(n, i, h, d)] * v[At(n, j, h, d)])).ToArray();
                    var delta = p.Zip(dp, (a, b) => a * b).Sum();
                    for (var a = 0; a < allowed.Length; a++)
                    {
                        var j = allowed[a];
                        var ds = p[a] * (dp[a] - delta) * scale;
                        for (var d = 0; d < HeadDim; d++)
                        {
                            o[At(n, i, h, d)] += p[a] * v[At(n, j, h, d)];
                            dq[At(n, i, h, d)] += ds * k[At(n, j, h, d)];
                            dk[At(n, j, h, d)] += ds * q[At(n, i, h, d)];
                            dv[At(n, j, h, d)] += p[a] * dOut[At(n, i, h, d)];
                        }
                    }
                }
            }
        }

        return (o, dq, dk, dv);
    }

    /// <summary>‖actual − expected‖ / ‖expected‖ in the Frobenius norm (docs/numerics.md §1); NaN anywhere gives NaN.</summary>
    private static double RelativeError(float[] actual, double[] expected)
    {
        if (actual.Length != expected.Length)
        {
            return double.PositiveInfinity;
        }

        double diff = 0, norm = 0;
        for (var i = 0; i < actual.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }

        return Math.Sqrt(diff) / Math.Sqrt(norm);
    }
}

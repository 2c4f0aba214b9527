"""The figures of one search tier (one index size on one store), as the tier's worker process sends them
and as ``mmrag bench`` prints them and writes them to JSON."""

from __future__ import annotations

from dataclasses import dataclass, fields

from mmrag.pipeline.bench.common import Latency
from mmrag.pipeline.bench.synthetic import VISIBLE_SHARES


@dataclass(frozen=True, slots=True)
class TierResult:
    size: int
    build_s: float
    cached: bool
    disk_mb: float
    peak_rss_mb: float
    index_rss_mb: float
    queries: int
    answered: int
    search: Latency
    search_embed: Latency
    answer: Latency
    vector_only: Latency
    keyword_only: Latency
    baseline: Latency
    embed: Latency
    add_file_vectors_ms_per_chunk: float
    add_file_keywords_ms_per_chunk: float
    visible_5: Latency  # the search for someone who may read 5% of the drive (document permissions on)
    visible_50: Latency
    visible_95: Latency
    store: str = "local"  # "local": the embedded Chroma in the searching process; "server": ``chroma run``
    server_peak_rss_mb: float = 0.0  # the server process's RSS high-water mark (server store)
    server_disk_mb: float = 0.0  # the server's persist folder

    def to_json(self) -> dict[str, object]:
        server = {"peak_rss_mb": round(self.server_peak_rss_mb, 1), "disk_mb": round(self.server_disk_mb, 1)}
        return {
            **self.search.to_json(),
            "baseline_p50": round(self.baseline.p50, 2),
            "baseline_p95": round(self.baseline.p95, 2),
            "baseline_p99": round(self.baseline.p99, 2),
            "ratio_p50": round(self.search.p50 / self.baseline.p50, 2) if self.baseline.p50 else None,
            "with_query_embedding": self.search_embed.to_json(),
            "with_answer": self.answer.to_json(),
            "vector_only": self.vector_only.to_json(),
            "keyword_only": self.keyword_only.to_json(),
            "baseline": self.baseline.to_json(),
            "query_embedding": self.embed.to_json(),
            "queries": self.queries,
            "answered": self.answered,
            "build_s": round(self.build_s, 1),
            "cached": self.cached,
            "disk_mb": round(self.disk_mb, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "index_rss_mb": round(self.index_rss_mb, 1),
            "store": self.store,
            "server": server if self.store == "server" else None,
            "chunks_per_gb_ram": round(self.size / (self.memory_mb() / 1000)) if self.memory_mb() else None,
            "with_permissions": {
                f"{share}%_visible": getattr(self, f"visible_{share}").to_json() for share in VISIBLE_SHARES
            },
            "add_file_ms_per_chunk": {
                "vectors": round(self.add_file_vectors_ms_per_chunk, 2),
                "keywords": round(self.add_file_keywords_ms_per_chunk, 2),
            },
        }

    def memory_mb(self) -> float:
        """What searching this index holds in memory at its peak: the searching process, plus the server's."""
        return self.peak_rss_mb + self.server_peak_rss_mb

    @classmethod
    def from_wire(cls, data: dict[str, object]) -> TierResult:
        """The worker's ``dataclasses.asdict`` output, back into a result."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name, value in values.items():
            if isinstance(value, dict):
                values[name] = Latency(**value)
        return cls(**values)  # type: ignore[arg-type]

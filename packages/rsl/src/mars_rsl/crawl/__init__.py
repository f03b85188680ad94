"""The HiRISE archive crawler behind ``mars-core rsl crawl`` (see ``run.crawl``)."""

"""Capture sources: readers that turn a capture file or stream into ``RawPacket`` tuples.

``pcap`` reads libpcap (``.pcap``, microsecond and nanosecond) and pcapng files, plain
or gzip-compressed, from a path or from standard input (``-``).
"""

"""dialflow: a self-hosted outbound calling API over real SIP/RTP."""

__version__ = "0.1.0"

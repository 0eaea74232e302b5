"""Live event-camera backends: iniVation through dv-processing (``dv``), Prophesee through OpenEB (``openeb``)."""

"""Models of the glacier task: seven smp architectures (through mars-core's shared smp
wrapper), MAResU-Net and WaveMix (written here). Names and descriptions: ``catalog``."""

# appliance/: the bootable image (appliance/README.md).

.PHONY: appliance appliance-boot
appliance: all
	@O=$(O) appliance/build.sh

appliance-boot: appliance
	@appliance/boot.sh

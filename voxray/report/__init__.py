"""voxray.report"""

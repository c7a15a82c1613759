from setuptools import find_packages, setup

package_name = 'gps_controllers'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='gps_ros2 developers',
    maintainer_email='gps_ros2@users.noreply.github.com',
    description='On-robot GPS runtime (ROS-free classes): state encoder via pinocchio, linear-Gaussian and policy controllers, safety filter',
    license='Apache-2.0',
)

@echo off
rem 5.1) data_dst view aligned results: opens data_dst\aligned in Explorer, where a double click shows the images in the
rem system's image viewer (DFL opened XnView here). set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
set "FOLDER=%WORKSPACE%\data_dst\aligned"
if not exist "%FOLDER%\" (
    echo No folder "%FOLDER%": run 5) data_dst faceset extract first.
    pause
    exit /b 1
)
start "" explorer "%FOLDER%"
exit /b 0

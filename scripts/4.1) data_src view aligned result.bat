@echo off
rem 4.1) data_src view aligned result: opens data_src\aligned in Explorer, where a double click shows the images in the
rem system's image viewer (DFL opened XnView here). set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
set "FOLDER=%WORKSPACE%\data_src\aligned"
if not exist "%FOLDER%\" (
    echo No folder "%FOLDER%": run 4) data_src faceset extract first.
    pause
    exit /b 1
)
start "" explorer "%FOLDER%"
exit /b 0
